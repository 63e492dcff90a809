"""Exception types raised by fergen.

Every error that a user can cause names the file or recipe key, the
offending value and a fix. The classes subclass ``ValueError`` or
``OSError`` so callers that already catch those keep working.
"""

from __future__ import annotations


class FergenError(Exception):
    """Base class of every error fergen raises on purpose."""


class RecipeError(FergenError, ValueError):
    """A recipe is invalid: unknown key, wrong type or out-of-range value."""


class DataError(FergenError, ValueError):
    """Input data (an image, a mask, a dataset tree) is missing or unusable."""


class MissingDependencyError(FergenError, ImportError):
    """An optional dependency needed by the requested feature is not installed."""


class ShardError(FergenError, OSError):
    """A shard or an output folder is corrupt, incomplete or inconsistent."""
