"""The face index: array round trips and the on-disk cache keyed by the file listing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from fergen.faces.base import FaceRecord
from fergen.faces.ckplus import CkplusFaceSource
from fergen.faces.index import FaceIndex, IndexBuilder, list_files, load_or_build

from .trees import make_bu3dfe, make_ckplus, open_faces, touch, write_pattern


def test_index_save_load_round_trip(tmp_path):
    builder = IndexBuilder()
    builder.add("b.png", "S2", "happy", "5", path="b.png", mask_path="", frame=2, name="bee", score=0.5, flag=True)
    builder.add("a.png", "S1", "anger", "1", path="a.png", mask_path="a.txt", frame=1, name="ay", score=1, flag=False)
    builder.reject("c.png", "name does not match x.png")
    builder.stats["other_files"] += 2
    index = builder.build()
    index.fingerprint = "key"
    index.save(tmp_path / "index.npz")

    loaded = FaceIndex.load(tmp_path / "index.npz", root="/data")

    assert loaded.ids.tolist() == ["a.png", "b.png"]
    assert loaded.meta["frame"].dtype == np.int64
    assert loaded.meta["score"].dtype == np.float64
    assert loaded.meta["flag"].dtype == bool
    assert loaded.unmatched == ("c.png (name does not match x.png)",)
    assert loaded.stats == {"other_files": 2}
    assert loaded.fingerprint == "key"
    assert loaded.records() == [
        FaceRecord(id="a.png", subject="S1", label="anger", path="/data/a.png", mask_path="/data/a.txt", code="1"),
        FaceRecord(id="b.png", subject="S2", label="happy", path="/data/b.png", mask_path=None, code="5"),
    ]
    assert loaded.record(0).meta == {"flag": False, "frame": 1, "name": "ay", "score": 1.0}
    assert type(loaded.record(1).meta["frame"]) is int


def test_index_from_records_with_mixed_meta():
    records = [FaceRecord(id="x", subject="s", label="happy", path="/p/x.png", meta={"file": "x", "extra": [1, 2]}),
               FaceRecord(id="w", subject="s", label="happy", meta={"file": "w"})]

    index = FaceIndex.from_records(records, ["stray.png"])

    assert index.ids.tolist() == ["w", "x"]
    assert [record.meta for record in index.records()] == [{"file": "w"}, {"extra": [1, 2], "file": "x"}]
    assert index.records()[1].path == "/p/x.png"
    assert index.records()[0].path is None
    assert index.unmatched == ("stray.png",)


def test_duplicate_ids_rejected():
    builder = IndexBuilder("/data/set")
    builder.add("a.png", "S1", "anger", "1")
    builder.add("a.png", "S2", "anger", "1")

    with pytest.raises(ValueError, match=r"/data/set: duplicate face ids \['a.png'\]"):
        builder.build()


def test_listing_skips_hidden_files_and_tracks_changes(tmp_path):
    touch(tmp_path, "a/one.txt", "1")
    touch(tmp_path, "a/.hidden", "x")
    touch(tmp_path, ".git/config", "x")
    touch(tmp_path, "b.txt", "22")

    listing = list_files(tmp_path, [".", "missing"])
    before = listing.fingerprint()
    touch(tmp_path, "a/one.txt", "11")

    assert listing.files == ("a/one.txt", "b.txt")
    assert listing.sizes == (1, 2)
    assert listing.under("a") == ["a/one.txt"]
    assert list_files(tmp_path, ["."]).fingerprint() != before


def test_second_open_loads_cached_index(tmp_path, monkeypatch):
    make_ckplus(tmp_path / "CK+", [("S005", "001", 3, 5.0), ("S006", "001", 3, 1.0)])
    first = open_faces(tmp_path, kind="ckplus", path="CK+")
    first_ids = first.index().ids.tolist()

    def fail_build(self, listing):
        raise AssertionError("the index was built again")

    monkeypatch.setattr(CkplusFaceSource, "build_index", fail_build)
    second = open_faces(tmp_path, kind="ckplus", path="CK+", last_frames=2)

    assert second.index().ids.tolist() != first_ids
    assert len(second.index()) == 6
    assert second.fingerprint() == first.fingerprint()
    assert Path(os.environ["FERGEN_CACHE_DIR"], "index").is_dir()


def test_changed_tree_rebuilds_index(tmp_path):
    root = make_bu3dfe(tmp_path / "BU-3DFE", ["F0001"])
    first = open_faces(tmp_path, kind="bu3dfe", path="BU-3DFE")
    assert len(first.index()) == 25

    make_bu3dfe(root, ["M0002"])
    write_pattern(root, "F0001/stray.png")
    second = open_faces(tmp_path, kind="bu3dfe", path="BU-3DFE")

    assert len(second.index()) == 50
    assert second.unmatched == ["F0001/stray.png (name does not match F0001/F0001_AN04WH_F2D.bmp)"]
    assert second.fingerprint() != first.fingerprint()


def test_unreadable_cache_file_is_rebuilt(tmp_path, caplog):
    make_bu3dfe(tmp_path / "BU-3DFE", ["F0001"])
    source = open_faces(tmp_path, kind="bu3dfe", path="BU-3DFE")
    listing = list_files(source.root, source.inputs())
    cache_dir = tmp_path / "cache"
    load_or_build("bu3dfe", 1, source.root, listing, source.build_index, cache_dir=cache_dir)
    (cache_file,) = cache_dir.glob("bu3dfe-*.npz")
    cache_file.write_bytes(b"not a zip file")

    index = load_or_build("bu3dfe", 1, source.root, listing, source.build_index, cache_dir=cache_dir)

    assert len(index) == 25
    assert "ignoring unreadable face index" in caplog.text
    assert FaceIndex.load(cache_file).fingerprint == index.fingerprint
