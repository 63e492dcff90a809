"""fergen: render synthetic facial-expression datasets from YAML recipes.

The package imports without torch. The torch integration lives in
:mod:`fergen.torch` and imports torch only when that module is imported.
"""

__version__ = "0.1.0"
