"""fergen_train: train and evaluate FERAtt and its baseline on fergen data.

Requires torch. The command-line entry point is ``fergen-train`` (or
``python -m fergen_train``).
"""
