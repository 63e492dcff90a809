"""Face assets: each selected face cut out, resized to the canonical canvas and cached.

Per-face work (decoding, mask strategy, cleanup, resize, feathering and the
Lab luminance statistic) happens once here, not once per sample. The result
is a :class:`FaceTable` of numpy arrays that worker processes share, and it is
cached on disk keyed by a fingerprint of the source files and the settings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import cv2
import numpy as np

from . import __version__
from .errors import DataError
from .faces.base import FaceRecord, FaceSource
from .masks import MaskResult, NoMask, compute_mask
from .recipe import MaskConfig, Recipe
from .selection import select_faces

log = logging.getLogger(__name__)

CACHE_ENV = "FERGEN_CACHE_DIR"


@dataclass
class FaceTable:
    """Prepared faces, aligned arrays indexed by face number.

    Attributes:
        rgba: uint8 (N, S, S, 4): RGB face and straight (not premultiplied) alpha on the canvas.
        luminance: float32 (N,): mean Lab L (0-100) of the face under its alpha.
        labels: int64 (N,): output class id.
        subjects, ids, codes: per-face strings.
        meta: per-face metadata dicts (file names, frames...).
        class_names: output class names, indexed by label.
        skipped: faces without a usable mask or image, counted by reason.
        skipped_ids: (face id, reason) of every skipped face.
        unmatched: source files that did not match the dataset's naming scheme.
    """

    rgba: np.ndarray
    luminance: np.ndarray
    labels: np.ndarray
    subjects: list[str]
    ids: list[str]
    codes: list[str]
    meta: list[dict[str, Any]]
    class_names: tuple[str, ...]
    skipped: Counter = field(default_factory=Counter)
    skipped_ids: list[tuple[str, str]] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    fingerprint: str = ""

    def __len__(self) -> int:
        return len(self.ids)

    def faces_of_class(self) -> list[np.ndarray]:
        """Return, for each class id, the face indices of that class."""
        return [np.flatnonzero(self.labels == index) for index in range(len(self.class_names))]


def _crop_square(image: np.ndarray, box: tuple[int, int, int]) -> np.ndarray:
    """Crop a square box that may extend beyond the image; outside pixels are zero."""
    x0, y0, side = box
    height, width = image.shape[:2]
    pad = max(0, -x0, -y0, x0 + side - width, y0 + side - height)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        x0, y0 = x0 + pad, y0 + pad
    return image[y0:y0 + side, x0:x0 + side]


def feather_alpha(binary: np.ndarray, sigma: float) -> np.ndarray:
    """Return a soft alpha (float32 in [0, 1]) from a binary uint8 mask, its edge blurred with ``sigma`` pixels.

    The mask is eroded by about two sigma first, so the soft edge lies inside
    the face and never shows the photo's own background (no dark or light ring
    after compositing). The blur is then cut to the eroded mask grown back by
    the same radius. A sigma of 0.3 or less returns the mask unchanged.
    """
    if sigma <= 0.3:
        return binary.astype(np.float32)
    radius = max(1, int(round(2.0 * sigma)))
    eroded = cv2.erode(binary, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2))
    alpha = cv2.GaussianBlur(eroded.astype(np.float32), (0, 0), sigma)
    alpha *= cv2.dilate(eroded, np.ones((3, 3), np.uint8), iterations=radius).astype(np.float32)
    return alpha


def face_to_canvas(image: np.ndarray, result: MaskResult, mask_config: MaskConfig, face_size: int,
                   padding: int) -> np.ndarray:
    """Crop the face box and place it on the canonical canvas with a feathered alpha.

    Returns:
        uint8 (face_size, face_size, 4): RGB and alpha (0-255).
    """
    inner = face_size - 2 * padding
    crop = _crop_square(image, result.box)
    mask = _crop_square(result.mask, result.box).astype(np.float32)
    side = crop.shape[0]
    interpolation = cv2.INTER_AREA if side > inner else cv2.INTER_LINEAR
    crop = cv2.resize(crop, (inner, inner), interpolation=interpolation)
    mask = cv2.resize(mask, (inner, inner), interpolation=interpolation)
    alpha = feather_alpha((mask >= 0.5).astype(np.uint8), mask_config.feather * inner / 4.0)
    canvas = np.zeros((face_size, face_size, 4), np.uint8)
    canvas[padding:padding + inner, padding:padding + inner, :3] = crop
    canvas[padding:padding + inner, padding:padding + inner, 3] = np.clip(alpha * 255.0 + 0.5, 0, 255)
    return canvas


def mean_luminance(rgba: np.ndarray) -> float:
    """Return the mean Lab L (0-100) of an RGBA uint8 face, weighted by its alpha."""
    rgb = rgba[..., :3].astype(np.float32) / 255.0
    lightness = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)[..., 0]
    alpha = rgba[..., 3].astype(np.float32)
    total = float(alpha.sum())
    return float((lightness * alpha).sum() / total) if total > 0 else 0.0


def prepare_face(source: FaceSource, record: FaceRecord, mask_config: MaskConfig, face_size: int,
                 padding: int) -> tuple[Optional[np.ndarray], str]:
    """Return (canvas, "") for a usable face, or (None, reason) for a skipped one."""
    try:
        image = source.load_image(record)
        file_mask = source.load_mask(record) if mask_config.strategy == "file" else None
    except DataError as error:
        log.warning("skipping face %s: %s", record.id, error)
        return None, "unreadable image" if "mask" not in str(error).lower() else "unreadable mask"
    try:
        result = compute_mask(image, file_mask, mask_config)
    except NoMask as reason:
        log.debug("skipping face %s: %s", record.id, reason.reason)
        return None, reason.reason
    return face_to_canvas(image, result, mask_config, face_size, padding), ""


def check_face_table(table: FaceTable, recipe: Recipe) -> None:
    """Apply the recipe's limits to a prepared (or cached) face table.

    Raises:
        DataError: if more than ``sampling.max_skipped_fraction`` of the selected faces were skipped.
    """
    total = len(table) + len(table.skipped_ids)
    limit = recipe.sampling.max_skipped_fraction
    if len(table.skipped_ids) > limit * total:
        raise DataError(f"faces: {len(table.skipped_ids)} of {total} faces were skipped ({dict(table.skipped)}), "
                        f"more than sampling.max_skipped_fraction={limit}. Check the mask strategy, or raise the "
                        "limit if this is expected.")
    counts = np.bincount(table.labels, minlength=len(table.class_names))
    empty = [name for name, count in zip(table.class_names, counts) if count == 0]
    if empty:
        log.warning("class(es) %s have no usable face after selection and masking, so no sample will show them; "
                    "check faces.classes, faces.subjects and faces.limit", ", ".join(empty))


def _fingerprint(recipe: Recipe, source: FaceSource) -> str:
    settings = {"faces": recipe.to_dict()["faces"], "face_size": recipe.render.face_size,
                "padding": recipe.render.padding, "seed": recipe.seed, "version": __version__,
                "opencv": cv2.__version__}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update(source.fingerprint().encode())
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """Return ``$FERGEN_CACHE_DIR``, else ``$XDG_CACHE_HOME/fergen``, else ``~/.cache/fergen``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fergen"


def _save(table: FaceTable, path: Path) -> None:
    header = {"labels_meta": [table.subjects, table.ids, table.codes, table.meta, list(table.class_names)],
              "skipped": dict(table.skipped), "skipped_ids": table.skipped_ids, "unmatched": table.unmatched}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(temporary, rgba=table.rgba, luminance=table.luminance, labels=table.labels,
             header=np.frombuffer(json.dumps(header).encode(), np.uint8))
    os.replace(temporary, path)


def _load(path: Path, fingerprint: str) -> Optional[FaceTable]:
    try:
        with np.load(path) as data:
            header = json.loads(data["header"].tobytes().decode())
            subjects, ids, codes, meta, class_names = header["labels_meta"]
            return FaceTable(rgba=data["rgba"], luminance=data["luminance"], labels=data["labels"],
                             subjects=subjects, ids=ids, codes=codes, meta=meta, class_names=tuple(class_names),
                             skipped=Counter(header["skipped"]),
                             skipped_ids=[tuple(item) for item in header["skipped_ids"]],
                             unmatched=header["unmatched"], fingerprint=fingerprint)
    except (OSError, ValueError, KeyError) as error:
        log.warning("ignoring unreadable face cache %s: %s", path, error)
        return None


def build_face_table(recipe: Recipe, data_root: Path, cache_dir: Optional[Path] = None,
                     use_cache: bool = True, workers: int = 1,
                     progress: Optional[Callable[[int], None]] = None,
                     on_start: Optional[Callable[[int], None]] = None) -> FaceTable:
    """Select, mask and prepare every face of the recipe (cached on disk by fingerprint).

    ``on_start`` is called with the number of faces to prepare (not called on a
    cache hit), then ``progress`` once per prepared face.

    Raises:
        DataError: if no face is usable, or more than ``sampling.max_skipped_fraction`` are skipped.
    """
    source = recipe.faces.open(data_root)
    selection = select_faces(recipe.faces, source, recipe.seed)
    fingerprint = _fingerprint(recipe, source)
    cache_path = (cache_dir or default_cache_dir()) / f"faces-{fingerprint[:32]}.npz"
    if use_cache and cache_path.is_file():
        table = _load(cache_path, fingerprint)
        if table is not None:
            log.info("loaded %d prepared faces from %s", len(table), cache_path)
            check_face_table(table, recipe)
            return table

    size, padding = recipe.render.face_size, recipe.render.padding
    log.info("preparing %d faces (mask strategy %s)", len(selection.records), recipe.faces.mask.strategy)
    if on_start is not None:
        on_start(len(selection.records))

    def prepare(record: FaceRecord) -> tuple[Optional[np.ndarray], str]:
        return prepare_face(source, record, recipe.faces.mask, size, padding)

    if workers > 1 and len(selection.records) > 8:
        from joblib import Parallel, delayed

        # OpenCV releases the GIL, so threads share the source without pickling it.
        iterator = Parallel(n_jobs=workers, backend="threading", return_as="generator")(
            delayed(prepare)(record) for record in selection.records)
    else:
        iterator = (prepare(record) for record in selection.records)
    results = []
    for result in iterator:
        results.append(result)
        if progress is not None:
            progress(1)

    kept = [(record, label, canvas) for (record, label, (canvas, _)) in
            zip(selection.records, selection.label_ids, results) if canvas is not None]
    skipped_ids = [(record.id, reason) for record, (canvas, reason) in zip(selection.records, results)
                   if canvas is None]
    skipped = Counter(reason for _, reason in skipped_ids)
    if not kept:
        raise DataError(f"faces: none of the {len(selection.records)} selected faces has a usable mask (skipped "
                        f"by reason: {dict(skipped)}). Try another 'faces.mask.strategy'.")
    rgba = np.stack([canvas for _, _, canvas in kept])
    table = FaceTable(
        rgba=rgba,
        luminance=np.array([mean_luminance(face) for face in rgba], np.float32),
        labels=np.array([label for _, label, _ in kept], np.int64),
        subjects=[record.subject for record, _, _ in kept],
        ids=[record.id for record, _, _ in kept],
        codes=[record.code for record, _, _ in kept],
        meta=[dict(record.meta) for record, _, _ in kept],
        class_names=selection.class_names, skipped=skipped, skipped_ids=skipped_ids,
        unmatched=list(source.unmatched), fingerprint=fingerprint)
    check_face_table(table, recipe)
    if use_cache:
        try:
            _save(table, cache_path)
        except OSError as error:
            log.warning("could not write the face cache %s: %s", cache_path, error)
    return table
