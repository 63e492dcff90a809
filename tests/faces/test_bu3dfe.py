"""BU-3DFE reader on a tiny tree of subject folders with 2D images and 3D companion files."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from fergen.errors import RecipeError
from fergen.selection import select_faces

from .trees import make_bu3dfe, open_faces, pattern_image, touch, write_pattern


@pytest.fixture
def bu3dfe(tmp_path):
    root = make_bu3dfe(tmp_path / "BU-3DFE", ["F0001", "M0002"])
    make_bu3dfe(root, ["F0003"], race="AE")
    write_pattern(root, "F0001/F0001_AN05WH_F2D.bmp")
    write_pattern(root, "F0001/F0001_NE01WH_F2D.bmp")
    write_pattern(root, "F0001/F0001_XX01WH_F2D.bmp")
    write_pattern(root, "M0002/snapshot.png")
    touch(root, "README.txt", "BU-3DFE")
    return root


def test_bu3dfe_all_intensities(bu3dfe):
    source = open_faces(bu3dfe.parent, kind="bu3dfe", path="BU-3DFE")
    index = source.index()

    assert len(index) == 3 * 25
    assert Counter(index.labels.tolist()) == {"neutral": 3, "anger": 12, "disgust": 12, "fear": 12, "happy": 12,
                                              "sadness": 12, "surprise": 12}
    assert sorted(set(index.subjects.tolist())) == ["F0001", "F0003", "M0002"]
    assert source.labels == ("neutral", "anger", "disgust", "fear", "happy", "sadness", "surprise")


def test_bu3dfe_highest_intensity_and_neutral(bu3dfe):
    source = open_faces(bu3dfe.parent, kind="bu3dfe", path="BU-3DFE", intensities=[4])
    index = source.index()

    assert len(index) == 3 * 7
    assert sorted(set(index.meta["intensity"].tolist())) == [0, 4]
    assert index.ids[:7].tolist() == [f"F0001/F0001_{code}WH_F2D.bmp" for code in
                                      ("AN04", "DI04", "FE04", "HA04", "NE00", "SA04", "SU04")]


def test_bu3dfe_record_fields(bu3dfe):
    source = open_faces(bu3dfe.parent, kind="bu3dfe", path="BU-3DFE")
    record = next(record for record in source.records() if record.id == "F0003/F0003_SU02AE_F2D.bmp")

    assert record.subject == "F0003"
    assert record.label == "surprise"
    assert record.code == "SU"
    assert record.meta == {"gender": "F", "intensity": 2, "race": "AE"}
    assert np.array_equal(source.load_image(record), pattern_image(record.id))


def test_bu3dfe_unmatched_and_companions(bu3dfe):
    source = open_faces(bu3dfe.parent, kind="bu3dfe", path="BU-3DFE")
    index = source.index()

    assert source.unmatched == [
        "F0001/F0001_AN05WH_F2D.bmp (intensity 05 is invalid for AN: neutral faces have 00, expressions 01 to 04)",
        "F0001/F0001_NE01WH_F2D.bmp (intensity 01 is invalid for NE: neutral faces have 00, expressions 01 to 04)",
        "F0001/F0001_XX01WH_F2D.bmp (name does not match F0001/F0001_AN04WH_F2D.bmp)",
        "M0002/snapshot.png (name does not match F0001/F0001_AN04WH_F2D.bmp)",
    ]
    # Companions are image files that are not faces: one _F3D.bmp texture a subject. The .wrl models,
    # .bnd landmarks and the README are not images at all.
    assert index.stats["companion_files"] == 3
    assert index.stats["other_files"] == 3 * 3 + 1


def test_bu3dfe_without_neutral_rejects_neutral_class(bu3dfe):
    source = open_faces(bu3dfe.parent, kind="bu3dfe", path="BU-3DFE", neutral=False, classes=["neutral", "happy"])

    with pytest.raises(RecipeError, match="'neutral' is not a label of this source"):
        select_faces(source.config, source, seed=0)


def test_bu3dfe_empty_intensities_rejected(bu3dfe):
    with pytest.raises(RecipeError, match=r"'faces.intensities': invalid value \[\]"):
        open_faces(bu3dfe.parent, kind="bu3dfe", path="BU-3DFE", intensities=[])
