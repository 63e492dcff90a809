"""Run the fergen-train command line with ``python -m fergen_train``."""

from fergen_train.cli import main

main(prog_name="fergen-train")
