"""Recipes: the YAML file that fully describes a synthetic dataset.

A recipe is loaded into frozen dataclasses and validated when it is read, so
a mistake is reported before any rendering starts. The canonical form (every
key, defaults filled in, keys sorted) is what gets hashed: two recipes with
the same sha256 render the same bytes.

Example:
    >>> recipe = load_recipe_text("version: 1\\nfaces: {kind: skimage}\\n"
    ...                           "backgrounds: {kind: skimage}\\n")
    >>> recipe.render.output_size
    (128, 128)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from . import __version__
from .errors import RecipeError
from .schema import build, check_interval, fail, spec, to_plain

RECIPE_VERSION = 1
DATA_ROOT_ENV = "FERGEN_DATA_ROOT"
_BUNDLED_DIR = Path(__file__).parent / "recipes"


@dataclass(frozen=True)
class MaskConfig:
    """Mask strategy and cleanup settings for each face's alpha mask."""

    strategy: Literal["file", "dark-background", "ellipse", "auto"] = spec(
        "auto", help="file: mask images; dark-background: faces on black; ellipse: tight crops; "
                     "auto: Haar face detector, ellipse and GrabCut")
    threshold: int = spec(12, low=0, high=254, help="dark-background: grey level above which a pixel is face")
    ellipse_axes: tuple[float, float] = spec(
        (0.40, 0.50), low=0.05, high=1.0, help="ellipse semi-axes as fractions of the crop width and height")
    ellipse_center: tuple[float, float] = spec(
        (0.5, 0.5), low=0.0, high=1.0, help="ellipse centre as fractions of the crop width and height")
    feather: float = spec(0.08, low=0.0, high=0.5,
                          help="width of the soft alpha edge as a fraction of the face size")
    close_size: int = spec(5, low=0, high=63, help="morphological close kernel size in pixels (0 disables)")
    erode_size: int = spec(3, low=0, high=63, help="erosion kernel size in pixels (0 disables)")
    grabcut_iterations: int = spec(3, low=0, high=20, help="auto: GrabCut refinement iterations (0 disables)")
    detector_min_neighbors: int = spec(5, low=1, high=50, help="auto: Haar cascade minNeighbors")
    detector_min_size: float = spec(0.1, low=0.01, high=1.0,
                                    help="auto: smallest face as a fraction of the shorter image side")
    face_expand: float = spec(1.35, low=1.0, high=3.0,
                              help="auto: the detected box is grown by this factor before cropping")
    min_area: float = spec(0.05, low=0.0, high=1.0,
                           help="a mask covering less than this fraction of the crop is rejected")

    def check(self, key: str) -> None:
        pass


@dataclass(frozen=True)
class ClassSpec:
    """One output class built from one or more source labels."""

    name: str = spec(help="output class name")
    merge: tuple[str, ...] = spec((), help="source labels mapped to this class (default: the name itself)")

    def sources(self) -> tuple[str, ...]:
        return self.merge or (self.name,)


@dataclass(frozen=True)
class FoldSpec:
    """Fold ``index`` of ``count`` from a seeded permutation of subjects."""

    index: int = spec(low=0, help="fold number, counted from 0")
    count: int = spec(low=2, help="number of folds")
    part: Literal["train", "test"] = spec("train", help="train: all other folds; test: this fold")
    seed: Optional[int] = spec(None, low=0, help="permutation seed (default: the recipe seed)")
    stratify: bool = spec(True, help="balance the subjects' classes across folds where possible")

    @staticmethod
    def from_text(text: str, key: str) -> dict[str, Any]:
        """Parse the short form ``"K of N"`` (fold K of N, train part) into fold keys."""
        match = re.fullmatch(r"\s*(\d+)\s+of\s+(\d+)\s*", text)
        if match is None:
            fail(key, text, "'K of N' or a mapping {index, count, part}",
                 f"Write '{key}: 0 of 10', or '{key}: {{index: 0, count: 10, part: test}}' for a test part.")
        return {"index": int(match[1]), "count": int(match[2])}

    def check(self, key: str) -> None:
        if self.index >= self.count:
            fail(f"{key}.index", self.index, f"an integer in [0, {self.count - 1}]",
                 f"Folds are counted from 0; set '{key}.index' below '{key}.count'.")


@dataclass(frozen=True)
class SubjectSelection:
    """Subject filter: the subjects whose faces enter the dataset."""

    include: tuple[str, ...] = spec((), help="keep only these subject ids (empty: all)")
    exclude: tuple[str, ...] = spec((), help="drop these subject ids")
    fold: Optional[FoldSpec] = spec(None, help="subject-independent fold selection; '0 of 10' is short for "
                                               "{index: 0, count: 10, part: train}")


@dataclass(frozen=True)
class FaceSourceConfig:
    """Keys shared by every face source; each ``kind`` adds its own."""

    kind: str = spec(help="face source kind")
    mask: MaskConfig = spec(default_factory=MaskConfig, help="mask strategy")
    classes: Optional[tuple[Union[str, ClassSpec], ...]] = spec(
        None, help="output classes in label order; a mapping {name, merge} merges source labels")
    subjects: SubjectSelection = spec(default_factory=SubjectSelection, help="subject selection")
    limit: Optional[int] = spec(None, low=1, help="use at most this many faces (after selection)")

    def class_specs(self) -> Optional[tuple[ClassSpec, ...]]:
        if self.classes is None:
            return None
        return tuple(ClassSpec(name=c) if isinstance(c, str) else c for c in self.classes)


@dataclass(frozen=True)
class BackgroundSourceConfig:
    """Keys shared by every background source; each ``kind`` adds its own."""

    kind: str = spec(help="background source kind")
    max_side: int = spec(512, low=16, high=8192,
                         help="photos are downscaled once so the longer side is at most this many pixels")
    max_unreadable: int = spec(100, low=0, help="stop with an error once more than this many photos are unreadable")
    cache_mb: int = spec(512, low=0, help="decoded photos kept in memory per worker, in MiB")


@dataclass(frozen=True)
class RenderConfig:
    """Sampling ranges and settings of the eight render steps (defaults follow FERAtt)."""

    output_size: tuple[int, int] = spec((128, 128), low=8, high=4096, help="composite height and width in pixels")
    face_size: int = spec(128, low=8, high=4096, help="canonical face canvas side in pixels")
    padding: int = spec(10, low=0, high=512, help="empty border around the face on its canvas, in pixels")
    scale_range: tuple[float, float] = spec((0.8, 1.2), low=0.05, high=10.0,
                                            help="face scale relative to the output size")
    flip_probability: float = spec(0.5, low=0.0, high=1.0, help="probability of a horizontal flip")
    rotation_range: tuple[float, float] = spec((-45.0, 45.0), low=-180.0, high=180.0, help="degrees")
    translation: float = spec(0.3, low=0.0, high=1.0,
                              help="maximum shift of the face centre as a fraction of the output size")
    perspective: float = spec(0.1, low=0.0, high=0.5, help="maximum perspective distortion (0 disables)")
    luminance_match: bool = spec(True, help="scale the face's Lab L channel to the background's")
    luminance_clip: tuple[float, float] = spec((0.5, 1.5), low=0.0, high=10.0,
                                               help="allowed range of the luminance ratio")
    background_crop_range: tuple[float, float] = spec(
        (0.5, 1.0), low=0.01, high=1.0, help="background crop side as a fraction of the largest crop")
    brightness_range: tuple[float, float] = spec((-0.1, 0.1), low=-1.0, high=1.0,
                                                 help="additive brightness as a fraction of full scale")
    contrast_range: tuple[float, float] = spec((0.8, 1.2), low=0.0, high=10.0,
                                               help="contrast factor around the image mean")
    blur_probability: float = spec(0.3, low=0.0, high=1.0, help="probability of a Gaussian blur")
    blur_sigma_range: tuple[float, float] = spec((0.3, 1.2), low=0.0, high=20.0, help="blur sigma in pixels")
    noise_sigma_range: tuple[float, float] = spec((0.0, 8.0), low=0.0, high=128.0,
                                                  help="Gaussian noise sigma in grey levels (0-255)")
    grayscale: bool = spec(False, help="convert the composite to grey (stored as three equal channels)")

    def check(self, key: str) -> None:
        for name in ("scale_range", "rotation_range", "luminance_clip", "background_crop_range",
                     "brightness_range", "contrast_range", "blur_sigma_range", "noise_sigma_range"):
            check_interval(f"{key}.{name}", getattr(self, name))
        if 2 * self.padding >= self.face_size:
            fail(f"{key}.padding", self.padding, f"less than half of face_size ({self.face_size})",
                 "Lower the padding or raise face_size.")


@dataclass(frozen=True)
class OutputConfig:
    """Sample count, shard size and member encoding."""

    samples: int = spec(512, low=1, help="number of samples to render")
    samples_per_shard: int = spec(1000, low=1, help="samples in each tar shard")
    composite_format: Literal["jpg", "png"] = spec("jpg", help="composite encoding")
    jpeg_quality: int = spec(95, low=1, high=100, help="JPEG quality of the composite")
    png_compression: int = spec(1, low=0, high=9, help="zlib level of the PNG members")
    shard_prefix: str = spec("shard", help="shard file name prefix")


@dataclass(frozen=True)
class SamplingConfig:
    """Face choice rule and the skipped-face limit."""

    face_choice: Literal["uniform", "class-balanced", "sequential"] = spec(
        "uniform", help="uniform over faces, uniform over classes then faces, or face i mod count")
    max_skipped_fraction: float = spec(0.5, low=0.0, high=1.0,
                                       help="stop if more than this fraction of faces has no usable mask")


@dataclass(frozen=True)
class Recipe:
    """A complete, validated recipe (see docs/recipes.md for every key)."""

    version: int = spec(help=f"recipe format version; this fergen reads version {RECIPE_VERSION}")
    faces: FaceSourceConfig = spec(help="where the faces come from")
    backgrounds: BackgroundSourceConfig = spec(help="where the background photos come from")
    name: str = spec("unnamed", help="a short name for the dataset")
    seed: int = spec(0, low=0, high=2**63 - 1, help="master seed; every random draw derives from it")
    render: RenderConfig = spec(default_factory=RenderConfig, help="render step settings")
    sampling: SamplingConfig = spec(default_factory=SamplingConfig, help="face and background choice")
    output: OutputConfig = spec(default_factory=OutputConfig, help="shard encoding")

    def check(self, key: str) -> None:
        if self.version != RECIPE_VERSION:
            fail("version", self.version, str(RECIPE_VERSION),
                 f"This fergen {__version__} reads recipe version {RECIPE_VERSION}; "
                 "update the recipe or fergen.")

    def to_dict(self) -> dict[str, Any]:
        """Return the canonical plain-data form (every key, defaults included)."""
        return to_plain(self)

    def canonical_yaml(self) -> str:
        """Return the canonical YAML text: sorted keys, defaults filled in."""
        return yaml.safe_dump(self.to_dict(), sort_keys=True, default_flow_style=None)

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def sha256(self) -> str:
        """sha256 of the canonical JSON form; equal hashes render equal bytes."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()

    @property
    def shard_count(self) -> int:
        return -(-self.output.samples // self.output.samples_per_shard)

    def replace(self, **changes: Any) -> "Recipe":
        """Return a copy with top-level fields replaced (e.g. ``samples`` via ``output``)."""
        return dataclasses.replace(self, **changes)


def _resolve_kind(section: str, data: Any, registry: dict[str, type]) -> type:
    if not isinstance(data, dict):
        fail(section, data, "a mapping with a 'kind' key", f"Write '{section}:' as a mapping.")
    kind = data.get("kind")
    if kind not in registry:
        import difflib

        close = difflib.get_close_matches(str(kind), list(registry), n=1)
        suggestion = f" Did you mean '{close[0]}'?" if close else ""
        fail(f"{section}.kind", kind, "one of " + ", ".join(sorted(registry)),
             f"Set '{section}.kind' to a supported source.{suggestion}")
    return registry[kind]


def _check_classes(faces: FaceSourceConfig) -> None:
    """Reject an empty class list and repeated class names."""
    specs = faces.class_specs()
    if specs is None:
        return
    if not specs:
        fail("faces.classes", [], "at least one class",
             "List the output classes, or remove 'faces.classes' to keep every label of the source.")
    seen: dict[str, int] = {}
    for index, class_spec in enumerate(specs):
        if class_spec.name in seen:
            fail(f"faces.classes[{index}]", class_spec.name, "a class name not used before",
                 f"'{class_spec.name}' is already class {seen[class_spec.name]}; merge the labels into one entry.")
        seen[class_spec.name] = index


def recipe_from_dict(data: Any, source: str = "<recipe>") -> Recipe:
    """Validate plain data and return a :class:`Recipe`.

    Raises:
        RecipeError: naming ``source``, the key path, the value and the fix.
    """
    from .backgrounds import BACKGROUND_KINDS
    from .faces import FACE_KINDS

    try:
        if not isinstance(data, dict):
            fail("<top level>", data, "a mapping", "A recipe is a YAML mapping with 'version', 'faces' and "
                 "'backgrounds' keys; see recipes/demo.yaml.")
        data = dict(data)
        if "version" not in data:
            raise RecipeError(f"recipe key 'version': missing. Add 'version: {RECIPE_VERSION}' at the top.")
        face_cls = _resolve_kind("faces", data.get("faces"), FACE_KINDS)
        background_cls = _resolve_kind("backgrounds", data.get("backgrounds"), BACKGROUND_KINDS)
        faces = build(face_cls, data.pop("faces"), "faces")
        _check_classes(faces)
        backgrounds = build(background_cls, data.pop("backgrounds"), "backgrounds")
        # Build the rest with placeholders, then insert the kind-specific sections.
        data["faces"] = {"kind": faces.kind}
        data["backgrounds"] = {"kind": backgrounds.kind}
        recipe = build(Recipe, data)
        return dataclasses.replace(recipe, faces=faces, backgrounds=backgrounds)
    except RecipeError as error:
        raise RecipeError(f"{source}: {error}") from None


def load_recipe_text(text: str, source: str = "<recipe>") -> Recipe:
    """Parse YAML ``text`` and return a validated :class:`Recipe`."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RecipeError(f"{source}: not valid YAML: {error}. Fix the syntax at the marked line.") from None
    return recipe_from_dict(data, source)


def bundled_recipes() -> dict[str, Path]:
    """Return the recipes shipped inside the package, by name (e.g. ``demo``)."""
    return {path.stem: path for path in sorted(_BUNDLED_DIR.glob("*.yaml"))}


def find_recipe(name_or_path: str | os.PathLike) -> Path:
    """Return the recipe file for a path, or for the name of a bundled recipe."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = bundled_recipes()
    if str(name_or_path) in bundled:
        return bundled[str(name_or_path)]
    if path.exists():
        raise RecipeError(f"recipe {str(path)!r} is a folder, not a YAML file. Pass the .yaml file.")
    raise RecipeError(
        f"recipe {str(path)!r} not found. Pass a path to a YAML file or the name of a bundled recipe "
        f"({', '.join(bundled) or 'none'}).")


def load_recipe(name_or_path: str | os.PathLike) -> Recipe:
    """Read and validate a recipe file (or a bundled recipe name such as ``demo``)."""
    path = find_recipe(name_or_path)
    return load_recipe_text(path.read_text(encoding="utf-8"), source=str(path))


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """Return the folder relative recipe paths are resolved against.

    Order: the ``data_root`` argument (``--data-root``), then the
    ``FERGEN_DATA_ROOT`` environment variable, then the current folder.
    """
    if data_root is None:
        data_root = os.environ.get(DATA_ROOT_ENV) or "."
    return Path(data_root).expanduser().resolve()


def resolve_path(path: str, data_root: Path, key: str) -> Path:
    """Resolve a recipe path against ``data_root`` (absolute and ``~`` paths are kept)."""
    if not path:
        fail(key, path, "a file or folder path", f"Set '{key}' to a path relative to the data root.")
    expanded = Path(os.path.expandvars(path)).expanduser()
    return expanded if expanded.is_absolute() else data_root / expanded
