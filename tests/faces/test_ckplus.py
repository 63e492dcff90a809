"""CK+ reader on a tiny tree with the dataset's own layout and file names."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from fergen.errors import DataError, RecipeError
from fergen.selection import select_faces
from testdata import write_rgb

from .trees import CK_SIZE, ck_landmarks, make_ckplus, open_faces, pattern_image, touch


@pytest.fixture
def ckplus(tmp_path):
    """Four labelled sequences of three subjects, three unusable sequences and stray files."""
    root = make_ckplus(tmp_path / "CK+", [
        ("S005", "001", 5, 3.0),   # disgust
        ("S005", "002", 4, 5.0),   # happy
        ("S010", "001", 3, 2.0),   # contempt
        ("S010", "003", 2, None),  # unlabelled
        ("S011", "001", 4, 7.0),   # surprise
        ("S012", "001", 3, None),  # gets an unreadable emotion file below
        ("S013", "001", 3, None),  # gets an emotion file for a missing frame below
    ])
    touch(root, "Emotion/S012/001/S012_001_00000003_emotion.txt", "three\n")
    touch(root, "Emotion/S013/001/S013_001_00000005_emotion.txt", "   4.0000000e+00\n")
    touch(root, "cohn-kanade-images/S011/001/S011_001_0000009.png")
    touch(root, "cohn-kanade-images/S011/001/.DS_Store")
    touch(root, "cohn-kanade-images/S011/001/notes.txt", "not an image")
    return root


def ids_by_label(index):
    pairs = zip(index.labels.tolist(), index.ids.tolist())
    result = {}
    for label, face_id in pairs:
        result.setdefault(label, []).append(face_id.split("/")[-1])
    return result


def test_ckplus_last_frames_and_first_neutral(ckplus):
    source = open_faces(ckplus.parent, kind="ckplus", path="CK+", last_frames=2)
    index = source.index()

    assert len(index) == 11
    assert ids_by_label(index) == {
        "disgust": ["S005_001_00000004.png", "S005_001_00000005.png"],
        "happy": ["S005_002_00000003.png", "S005_002_00000004.png"],
        "neutral": ["S005_001_00000001.png", "S010_001_00000001.png", "S011_001_00000001.png"],
        "contempt": ["S010_001_00000002.png", "S010_001_00000003.png"],
        "surprise": ["S011_001_00000003.png", "S011_001_00000004.png"],
    }
    assert source.labels == ("neutral", "anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
    assert sorted(set(index.subjects.tolist())) == ["S005", "S010", "S011"]


def test_ckplus_record_fields(ckplus):
    source = open_faces(ckplus.parent, kind="ckplus", path="CK+", last_frames=2)
    records = {record.id: record for record in source.records()}

    peak = records["cohn-kanade-images/S005/001/S005_001_00000005.png"]
    assert peak.subject == "S005"
    assert peak.label == "disgust"
    assert peak.code == "3"
    assert peak.meta == {"sequence": "001", "frame": 5, "position": 4, "from_end": 0}
    assert peak.path == str(ckplus / "cohn-kanade-images/S005/001/S005_001_00000005.png")
    assert peak.mask_path == str(ckplus / "Landmarks/S005/001/S005_001_00000005_landmarks.txt")

    neutral = records["cohn-kanade-images/S010/001/S010_001_00000001.png"]
    assert neutral.label == "neutral"
    assert neutral.code == "0"
    assert neutral.meta["position"] == 0


def test_ckplus_summary_lists_unusable_files(ckplus):
    source = open_faces(ckplus.parent, kind="ckplus", path="CK+")
    index = source.index()

    assert source.unmatched == [
        "Emotion/S012/001/S012_001_00000003_emotion.txt (invalid emotion code 'three'; "
        "expected one number from 0 to 7)",
        "Emotion/S013/001/S013_001_00000005_emotion.txt (no image "
        "cohn-kanade-images/S013/001/S013_001_00000005.png for this label)",
        "cohn-kanade-images/S011/001/S011_001_0000009.png (name does not match "
        "cohn-kanade-images/S005/001/S005_001_00000011.png)",
    ]
    assert index.stats["unlabelled_sequences"] == 3
    assert index.stats["labelled_sequences"] == 4
    assert index.stats["other_files"] == 1


def test_ckplus_neutral_from_every_sequence(ckplus):
    source = open_faces(ckplus.parent, kind="ckplus", path="CK+", neutral_sequences="all")
    neutral = ids_by_label(source.index())["neutral"]

    assert neutral == ["S005_001_00000001.png", "S005_002_00000001.png", "S010_001_00000001.png",
                       "S011_001_00000001.png"]


def test_ckplus_never_uses_first_frame_as_expression(ckplus):
    source = open_faces(ckplus.parent, kind="ckplus", path="CK+", last_frames=10, neutral=False)
    by_label = ids_by_label(source.index())

    assert "neutral" not in by_label
    assert by_label["contempt"] == ["S010_001_00000002.png", "S010_001_00000003.png"]
    assert len(by_label["disgust"]) == 4
    assert source.labels == ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")


def test_ckplus_neutral_subjects_drawn_with_seed(ckplus):
    source = open_faces(ckplus.parent, kind="ckplus", path="CK+", neutral_subjects=2)
    draws = []
    for seed in range(8):
        index = source.draw(seed)
        neutral_subjects = index.subjects[index.labels == "neutral"].tolist()
        assert len(neutral_subjects) == 2
        assert len(set(neutral_subjects)) == 2
        assert int((index.labels != "neutral").sum()) == 4
        draws.append(tuple(neutral_subjects))

    assert source.draw(3).ids.tolist() == source.draw(3).ids.tolist()
    assert len(set(draws)) > 1


def test_ckplus_too_many_neutral_subjects(ckplus):
    config = dict(kind="ckplus", path="CK+", neutral_subjects=4)
    source = open_faces(ckplus.parent, **config)

    with pytest.raises(RecipeError, match=r"'faces.neutral_subjects': invalid value 4; .* has 3 subjects"):
        select_faces(source.config, source, seed=0)


def test_ckplus_classes_without_contempt(ckplus):
    source = open_faces(ckplus.parent, kind="ckplus", path="CK+",
                        classes=["neutral", "anger", "disgust", "fear", "happy", "sadness", "surprise"])
    selection = select_faces(source.config, source, seed=0)

    assert len(selection.records) == 6
    assert selection.dropped_by_class == 1
    assert "contempt" not in {record.label for record in selection.records}


def test_ckplus_image_and_landmark_mask(ckplus):
    source = open_faces(ckplus.parent, kind="ckplus", path="CK+")
    record = source.records()[0]

    image = source.load_image(record)
    mask = source.load_mask(record)

    name = record.id
    assert np.array_equal(image, pattern_image(name, CK_SIZE))
    expected = np.zeros(CK_SIZE, np.uint8)
    outline = np.round(ck_landmarks(*CK_SIZE)[:27]).astype(np.int32)
    cv2.fillConvexPoly(expected, cv2.convexHull(outline), 1)
    assert mask.dtype == np.float32
    assert mask.shape == CK_SIZE
    assert np.array_equal(mask, expected.astype(np.float32))
    assert 0.2 < mask.mean() < 0.8


def test_ckplus_bad_landmarks_file(ckplus):
    source = open_faces(ckplus.parent, kind="ckplus", path="CK+")
    record = source.records()[0]
    touch(ckplus, f"Landmarks/{record.id.split('/', 1)[1][:-4]}_landmarks.txt", "1 2\n3 4\n")

    with pytest.raises(DataError, match=r"expected 68 lines of 'x y', found shape \(2, 2\)"):
        source.load_mask(record)


def test_ckplus_without_landmarks_uses_detector(tmp_path):
    root = make_ckplus(tmp_path / "CK+", [("S005", "001", 2, 5.0)], landmarks=False)
    face = skimage.data.astronaut()[:256, 96:352]
    for frame in (1, 2):
        write_rgb(root / f"cohn-kanade-images/S005/001/S005_001_{frame:08d}.png", face)
    source = open_faces(tmp_path, kind="ckplus", path="CK+", mask={"strategy": "file"})
    record = source.records()[1]

    mask = source.load_mask(record)

    assert record.mask_path is None
    assert mask.shape == face.shape[:2]
    assert 0.05 < mask.mean() < 0.6
