"""RAF-DB and FER2013 readers: label files and a CSV of pixels, neither with subject ids."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from fergen.selection import plan_folds, select_faces

from .trees import fer_pixels, fer_row, open_faces, touch, write_fer2013, write_pattern

RAF_LABELS = """train_00001.jpg 5
train_00002.jpg 1
train_00003.jpg 7
test_0001.jpg 4
test_0002.jpg 6
train_00004.jpg 9
garbage line

train_00005.jpg 2
"""


@pytest.fixture
def rafdb(tmp_path):
    root = tmp_path / "RAF-DB" / "basic"
    touch(root, "EmoLabel/list_patition_label.txt", RAF_LABELS)
    for name in ("train_00001", "train_00002", "train_00003", "test_0001", "test_0002", "train_00006"):
        write_pattern(root, f"Image/aligned/{name}_aligned.jpg")
    write_pattern(root, "Image/aligned/foo.jpg")
    write_pattern(root, "Image/original/train_00001.jpg")
    return root


def test_rafdb_train_partition(rafdb):
    source = open_faces(rafdb.parents[1], kind="rafdb", path="RAF-DB/basic")
    index = source.index()

    assert index.ids.tolist() == ["Image/aligned/train_00001_aligned.jpg", "Image/aligned/train_00002_aligned.jpg",
                                  "Image/aligned/train_00003_aligned.jpg"]
    assert index.labels.tolist() == ["sadness", "surprise", "neutral"]
    assert index.codes.tolist() == ["5", "1", "7"]
    assert index.subjects.tolist() == ["train_00001", "train_00002", "train_00003"]
    assert source.has_subjects is False
    assert source.records()[0].meta == {"line": 1, "partition": "train"}


def test_rafdb_both_partitions_and_original_images(rafdb):
    both = open_faces(rafdb.parents[1], kind="rafdb", path="RAF-DB/basic", partitions=["train", "test"])
    original = open_faces(rafdb.parents[1], kind="rafdb", path="RAF-DB/basic", images="original")

    assert len(both.index()) == 5
    assert sorted(both.index().meta["partition"].tolist()) == ["test", "test", "train", "train", "train"]
    assert original.index().ids.tolist() == ["Image/original/train_00001.jpg"]


def test_rafdb_unmatched_lines_and_images(rafdb):
    source = open_faces(rafdb.parents[1], kind="rafdb", path="RAF-DB/basic")
    source.index()

    label_file = "EmoLabel/list_patition_label.txt"
    assert source.unmatched == [
        f"{label_file} line 6 ('train_00004.jpg 9' is not '<train|test>_<number>.jpg <code 1-7>')",
        f"{label_file} line 7 ('garbage line' is not '<train|test>_<number>.jpg <code 1-7>')",
        f"{label_file} line 9 (no image for train_00005.jpg in Image/aligned)",
        "Image/aligned/foo.jpg (name does not match Image/aligned/train_00001_aligned.jpg)",
        f"Image/aligned/train_00006_aligned.jpg (no line for train_00006.jpg in {label_file})",
    ]


def test_rafdb_folds_split_by_image(rafdb, caplog):
    source = open_faces(rafdb.parents[1], kind="rafdb", path="RAF-DB/basic", partitions=["train", "test"],
                        subjects={"fold": {"index": 0, "count": 2}})

    with caplog.at_level(logging.WARNING, logger="fergen.selection"):
        plan = plan_folds(source.config, source, seed=0)

    assert plan.by_image is True
    assert "no subject ids: folds split by image" in caplog.text
    assert sorted(plan.subjects(0) + plan.subjects(1)) == sorted(source.index().ids.tolist())
    assert [len(plan.subjects(fold)) for fold in range(2)] in ([3, 2], [2, 3])


def fer_rows():
    return [
        fer_row(0, 1, "Training"),
        fer_row(3, 2, "PublicTest"),
        fer_row(6, 3, "PrivateTest"),
        fer_row(5, 4, "Training"),
        fer_row(9, 5, "Training"),
        ("2", " ".join(["7"] * 100), "Training"),
        ("1", " ".join(["300"] * 2304), "Training"),
        fer_row(4, 6, "Other"),
        ("4", " ".join(["7"] * 2303 + ["x"]), "Training"),
    ]


def test_fer2013_usage_and_pixels(tmp_path):
    write_fer2013(tmp_path / "fer2013" / "fer2013.csv", fer_rows())
    source = open_faces(tmp_path, kind="fer2013", path="fer2013/fer2013.csv")
    records = source.records()

    assert [record.id for record in records] == ["line000002", "line000005"]
    assert [record.label for record in records] == ["anger", "surprise"]
    assert [record.code for record in records] == ["0", "5"]
    assert records[1].meta == {"line": 5, "pixel_row": 3, "usage": "Training"}
    assert records[1].path is None
    assert source.has_subjects is False
    image = source.load_image(records[1])
    assert image.shape == (48, 48, 3)
    assert image.dtype == np.uint8
    assert np.array_equal(image[..., 0], fer_pixels(4))
    assert np.array_equal(image[..., 2], fer_pixels(4))


def test_fer2013_unmatched_rows(tmp_path):
    write_fer2013(tmp_path / "fer2013.csv", fer_rows())
    source = open_faces(tmp_path, kind="fer2013", path=".", usage=["train", "val", "test"])

    assert source.index().ids.tolist() == ["line000002", "line000003", "line000004", "line000005"]
    assert source.unmatched == ["line 6 (emotion '9' is not a code from 0 to 6)",
                                "line 7 (100 pixel values, expected 2304)",
                                "line 8 (pixel values outside 0-255)",
                                "line 9 (Usage 'Other' is not one of Training, PublicTest, PrivateTest)",
                                "line 10 (pixel values are not all whole numbers)"]


def test_fer2013_second_run_reads_cached_pixels(tmp_path):
    write_fer2013(tmp_path / "fer2013.csv", fer_rows())
    first = open_faces(tmp_path, kind="fer2013", path="fer2013.csv", usage=["val"])
    second = open_faces(tmp_path, kind="fer2013", path="fer2013.csv", usage=["val"])

    assert first.index().pixels.shape == (4, 48, 48)
    assert isinstance(second.index().pixels, np.memmap)
    assert np.array_equal(second.load_image(second.records()[0])[..., 1], fer_pixels(2))


def test_fer2013_other_column_order(tmp_path):
    rows = [(code, usage, pixels) for code, pixels, usage in fer_rows()[:4]]
    write_fer2013(tmp_path / "icml_face_data.csv", rows, header="emotion, Usage, pixels")
    source = open_faces(tmp_path, kind="fer2013", path="icml_face_data.csv", usage=["test"])

    assert source.index().labels.tolist() == ["neutral"]


def test_fer2013_fold_selection_uses_images(tmp_path):
    write_fer2013(tmp_path / "fer2013.csv", fer_rows())
    source = open_faces(tmp_path, kind="fer2013", path="fer2013.csv", usage=["train", "val", "test"],
                        subjects={"fold": {"index": 1, "count": 2, "part": "test"}})
    train = open_faces(tmp_path, kind="fer2013", path="fer2013.csv", usage=["train", "val", "test"],
                       subjects={"fold": {"index": 1, "count": 2, "part": "train"}})

    test_ids = {record.id for record in select_faces(source.config, source, seed=5).records}
    train_ids = {record.id for record in select_faces(train.config, train, seed=5).records}

    assert len(test_ids) == 2
    assert test_ids.isdisjoint(train_ids)
    assert test_ids | train_ids == {"line000002", "line000003", "line000004", "line000005"}
