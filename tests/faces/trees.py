"""Tiny dataset trees with the real naming schemes, written as real image files.

Pixels are small random arrays seeded from the file's relative path, so a
test can recompute what a file contains with :func:`pattern_image`.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Iterable, Optional, Sequence

import cv2
import numpy as np

from testdata import face_on_black, write_rgb

CK_SIZE = (40, 48)  # height, width of the CK+ frames


def pattern_image(name: str, shape: tuple[int, int] = (16, 16)) -> np.ndarray:
    """Return RGB uint8 noise seeded from ``name`` (a relative path)."""
    rng = np.random.default_rng(zlib.crc32(name.encode("utf-8")))
    return rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)


def write_pattern(root: Path, name: str, shape: tuple[int, int] = (16, 16)) -> Path:
    """Write :func:`pattern_image` of ``name`` to ``root / name``."""
    return write_rgb(root / name, pattern_image(name, shape))


def touch(root: Path, name: str, text: str = "") -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def ck_landmarks(height: int, width: int) -> np.ndarray:
    """Return 68 points: jaw (0-16) on the lower half of an ellipse, brows (17-26) above, the rest inside."""
    cx, cy, ax, ay = width / 2, height / 2, width * 0.35, height * 0.4
    jaw_angles = np.linspace(np.pi, 0, 17)
    jaw = np.stack([cx + ax * np.cos(jaw_angles), cy + ay * np.sin(jaw_angles)], axis=1)
    brows = np.stack([np.linspace(cx - ax * 0.8, cx + ax * 0.8, 10), np.full(10, cy - ay * 0.6)], axis=1)
    inner = np.stack([np.full(41, cx), np.linspace(cy - ay * 0.3, cy + ay * 0.5, 41)], axis=1)
    return np.concatenate([jaw, brows, inner])


def make_ckplus(root: Path, sequences: Iterable[tuple[str, str, int, Optional[float]]],
                landmarks: bool = True) -> Path:
    """Write a CK+ tree: for each (subject, sequence, frame count, code) frames 1..n; code None: unlabelled."""
    height, width = CK_SIZE
    points = ck_landmarks(height, width)
    for subject, sequence, frame_count, code in sequences:
        for frame in range(1, frame_count + 1):
            stem = f"{subject}_{sequence}_{frame:08d}"
            write_pattern(root, f"cohn-kanade-images/{subject}/{sequence}/{stem}.png", CK_SIZE)
            if landmarks:
                lines = "".join(f"   {x:.7e}   {y:.7e}\n" for x, y in points)
                touch(root, f"Landmarks/{subject}/{sequence}/{stem}_landmarks.txt", lines)
        if code is not None:
            stem = f"{subject}_{sequence}_{frame_count:08d}"
            touch(root, f"Emotion/{subject}/{sequence}/{stem}_emotion.txt", f"   {code:.7e}\n")
    return root


def ckplus_paper_sequences(subjects: int = 40) -> list[tuple[str, str, int, Optional[float]]]:
    """One labelled 4-frame sequence a subject, codes 1-7 in turn, and an unlabelled one for the first subject."""
    sequences: list[tuple[str, str, int, Optional[float]]] = [
        (f"S{10 + number:03d}", "001", 4, float(1 + number % 7)) for number in range(subjects)]
    sequences.append(("S010", "002", 3, None))
    return sequences


BU_EXPRESSIONS = ("AN", "DI", "FE", "HA", "SA", "SU")


def make_bu3dfe(root: Path, subjects: Sequence[str], race: str = "WH", faces_on_black: bool = False) -> Path:
    """Write a BU-3DFE tree: each subject's NE00 and 6 expressions x 4 intensities, plus 3D companions."""
    for number, subject in enumerate(subjects):
        names = [f"{subject}_NE00{race}_F2D.bmp"]
        names += [f"{subject}_{code}{level:02d}{race}_F2D.bmp" for code in BU_EXPRESSIONS for level in range(1, 5)]
        face = cv2.resize(face_on_black(number), (48, 48)) if faces_on_black else None
        for name in names:
            if face is not None:
                write_rgb(root / subject / name, face)
            else:
                write_pattern(root, f"{subject}/{name}")
        write_pattern(root, f"{subject}/{subject}_AN01{race}_F3D.bmp")
        touch(root, f"{subject}/{subject}_AN01{race}_F3D.wrl", "#VRML V2.0 utf8\n")
        touch(root, f"{subject}/{subject}_AN01{race}_RAW.wrl", "#VRML V2.0 utf8\n")
        touch(root, f"{subject}/{subject}_AN01{race}_F3D.bnd", "1 0 0 0\n")
    return root


def make_jaffe(root: Path, names: Iterable[str]) -> Path:
    for name in names:
        write_pattern(root, name)
    return root


def make_kdef(root: Path, names: Iterable[str]) -> Path:
    """Write KDEF images given as ``AF01ANS.JPG``; each goes into its session folder (``AF01``)."""
    for name in names:
        write_pattern(root, f"{name[:4]}/{name}")
    return root


def write_fer2013(path: Path, rows: Iterable[Sequence[str]], header: str = "emotion,pixels,Usage") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [header] + [",".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def fer_pixels(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(48, 48), dtype=np.uint8)


def fer_row(code: int, seed: int, usage: str) -> tuple[str, str, str]:
    return str(code), " ".join(str(value) for value in fer_pixels(seed).ravel()), usage


def faces_recipe(seed: int = 0, **faces):
    """Return a validated recipe with the given ``faces`` section and scikit-image backgrounds."""
    from fergen.recipe import recipe_from_dict

    return recipe_from_dict({"version": 1, "seed": seed, "faces": faces,
                             "backgrounds": {"kind": "skimage", "images": ["coffee"]},
                             "render": {"output_size": [64, 64], "face_size": 64, "padding": 4},
                             "output": {"samples": 4}})


def open_faces(data_root: Path, **faces):
    """Validate a ``faces`` section through the recipe schema and open it against ``data_root``."""
    return faces_recipe(**faces).faces.open(data_root)
