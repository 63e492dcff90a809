"""Face sources, selected in a recipe by ``faces.kind``.

Each source module defines a config dataclass (a subclass of
:class:`~fergen.recipe.FaceSourceConfig`) with an ``open(data_root)``
method and registers it here with :func:`register`.
"""

from __future__ import annotations

from ..schema import registrar
from .base import FaceRecord, FaceSource

FACE_KINDS: dict[str, type] = {}
#: Class decorator: ``@register("ckplus")`` adds a face source config class to FACE_KINDS.
register = registrar(FACE_KINDS)


# Imported for their registrations.
from . import bu3dfe, ckplus, fer2013, folder, jaffe, kdef, rafdb, skimage_faces  # noqa: E402,F401

__all__ = ["FACE_KINDS", "FaceRecord", "FaceSource", "register"]
