"""Shards end to end: webdataset read-back, determinism, resume, verify and Dask."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds

from fergen.engine import render_to_folder, verify_folder
from fergen.errors import ShardError
from fergen.imageio import decode_image_bytes
from fergen.pipeline import Renderer
from fergen.recipe import recipe_from_dict
from fergen.shards import MEMBER_MTIME, STATE_DIR, shard_name
from testdata import small_recipe


@pytest.fixture
def recipe(face_folder, background_folder):
    return recipe_from_dict(small_recipe(face_folder, background_folder))


def shard_bytes(out: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(out.glob("*.tar"))}


def test_shards_read_back_with_webdataset(recipe, tmp_path):
    out = tmp_path / "out"
    summary = render_to_folder(recipe, out, data_root="/")
    assert summary.shards == 3
    assert sorted(path.name for path in out.glob("*.tar")) == ["shard-000000.tar", "shard-000001.tar",
                                                               "shard-000002.tar"]

    dataset = wds.WebDataset(sorted(str(path) for path in out.glob("*.tar")), shardshuffle=False, empty_check=False)
    samples = list(dataset)
    assert len(samples) == 20
    assert [sample["__key__"] for sample in samples] == [f"{index:09d}" for index in range(20)]

    renderer = Renderer(recipe, "/")
    labels = []
    for index, sample in enumerate(samples):
        assert {key for key in sample if not key.startswith("__")} == {"cls", "face.png", "jpg", "json", "mask.png"}
        metadata = json.loads(sample["json"])
        label = int(sample["cls"])
        labels.append(label)
        assert metadata["label"] == label
        assert metadata["class_name"] == ("anger", "happy", "neutral")[label]
        assert metadata["face_id"].split("/")[0] == metadata["class_name"]
        assert metadata["recipe_sha256"] == recipe.sha256
        assert len(metadata["theta"]) == 2
        composite = decode_image_bytes(sample["jpg"])
        target = decode_image_bytes(sample["face.png"])
        mask = decode_image_bytes(sample["mask.png"])
        assert composite.shape == (64, 64, 3)
        assert target.shape == (64, 64, 3)
        assert mask.shape == (64, 64)
        if index < 3:
            expected = renderer.sample(index)
            np.testing.assert_array_equal(target, expected.target)
            np.testing.assert_array_equal(mask, expected.mask)
            # JPEG (quality 95, 4:2:0 chroma) of a noisy 64x64 image: a few grey levels on average.
            assert np.abs(composite.astype(int) - expected.composite.astype(int)).mean() < 6.0

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["samples"] == 20
    assert manifest["class_names"] == ["anger", "happy", "neutral"]
    assert manifest["class_histogram"] == {name: labels.count(i) for i, name in enumerate(manifest["class_names"])
                                           if labels.count(i)}
    assert sum(manifest["class_histogram"].values()) == 20
    assert [entry["samples"] for entry in manifest["shards"]] == [8, 8, 4]


def test_tar_members_sorted_with_fixed_metadata(recipe, tmp_path):
    render_to_folder(recipe, tmp_path / "out", data_root="/")
    with tarfile.open(tmp_path / "out" / "shard-000000.tar") as archive:
        members = archive.getmembers()
    names = [member.name for member in members]
    assert names == sorted(names)
    assert names[:5] == ["000000000.cls", "000000000.face.png", "000000000.jpg", "000000000.json",
                         "000000000.mask.png"]
    assert {member.mtime for member in members} == {MEMBER_MTIME}
    assert {(member.uid, member.gid, member.uname, member.gname) for member in members} == {(0, 0, "", "")}


def test_bytes_equal_across_workers_and_reruns(recipe, tmp_path):
    render_to_folder(recipe, tmp_path / "one", data_root="/", workers=1)
    render_to_folder(recipe, tmp_path / "two", data_root="/", workers=2)
    render_to_folder(recipe, tmp_path / "again", data_root="/", workers=1, cache_dir=tmp_path / "fresh-cache")
    first = shard_bytes(tmp_path / "one")
    assert len(first) == 3
    assert first == shard_bytes(tmp_path / "two")
    assert first == shard_bytes(tmp_path / "again")
    assert (tmp_path / "one" / "manifest.json").read_bytes() == (tmp_path / "two" / "manifest.json").read_bytes()


def test_resume_rerenders_only_damaged_shards(recipe, tmp_path):
    out = tmp_path / "out"
    render_to_folder(recipe, out, data_root="/")
    original = shard_bytes(out)
    (out / "shard-000001.tar").unlink()
    damaged = out / "shard-000002.tar"
    damaged.write_bytes(damaged.read_bytes()[:1000])
    (out / ".shard-000000.tar.tmp-999").write_bytes(b"left over by a killed run")
    verify = verify_folder(out)
    assert not verify.ok
    assert verify.problems[0] == "shard-000001.tar: missing"
    assert verify.problems[1].startswith("shard-000002.tar: size 1000")
    summary = render_to_folder(recipe, out, data_root="/")
    assert summary.rendered_shards == 2
    assert summary.reused_shards == 1
    assert shard_bytes(out) == original
    assert not list(out.glob(".*tmp*"))
    assert verify_folder(out).ok


def test_verify_detects_changed_bytes_and_deep_decode(recipe, tmp_path):
    out = tmp_path / "out"
    render_to_folder(recipe, out, data_root="/")
    report = verify_folder(out, deep=True)
    assert report.ok
    assert (report.shards, report.samples) == (3, 20)
    path = out / "shard-000000.tar"
    data = bytearray(path.read_bytes())
    data[700] ^= 0xFF
    path.write_bytes(bytes(data))
    assert verify_folder(out).problems == ["shard-000000.tar: sha256 differs from the manifest"]


def test_other_recipe_in_same_folder_is_refused(recipe, tmp_path, face_folder, background_folder):
    out = tmp_path / "out"
    render_to_folder(recipe, out, data_root="/")
    other = recipe_from_dict(small_recipe(face_folder, background_folder, seed=8))
    with pytest.raises(ShardError, match="contains shards of another recipe"):
        render_to_folder(other, out, data_root="/")
    summary = render_to_folder(other, out, data_root="/", overwrite=True)
    assert summary.rendered_shards == 3
    assert json.loads((out / "manifest.json").read_text())["recipe_sha256"] == other.sha256


def test_state_records_match_shards(recipe, tmp_path):
    out = tmp_path / "out"
    render_to_folder(recipe, out, data_root="/")
    record = json.loads((out / STATE_DIR / f"{shard_name('shard', 0)}.json").read_text())
    assert record["samples"] == 8
    assert record["first_index"] == 0
    assert record["recipe_sha256"] == recipe.sha256
    assert sum(record["histogram"].values()) == 8


def test_png_composite_is_lossless(face_folder, background_folder, tmp_path):
    data = small_recipe(face_folder, background_folder, output={"samples": 4, "composite_format": "png"})
    recipe = recipe_from_dict(data)
    render_to_folder(recipe, tmp_path / "out", data_root="/")
    samples = list(wds.WebDataset(str(tmp_path / "out" / "shard-000000.tar"), shardshuffle=False,
                                  empty_check=False))
    renderer = Renderer(recipe, "/")
    assert len(samples) == 4
    for index, sample in enumerate(samples):
        np.testing.assert_array_equal(decode_image_bytes(sample["png"]), renderer.sample(index).composite)


@pytest.mark.slow
def test_dask_local_cluster_gives_same_bytes(recipe, tmp_path):
    pytest.importorskip("distributed")
    render_to_folder(recipe, tmp_path / "joblib", data_root="/", workers=1)
    summary = render_to_folder(recipe, tmp_path / "dask", data_root="/", workers=2, backend="dask")
    assert summary.rendered_shards == 3
    assert shard_bytes(tmp_path / "dask") == shard_bytes(tmp_path / "joblib")
    assert verify_folder(tmp_path / "dask").ok


def test_unreadable_background_counts_do_not_depend_on_workers(face_folder, background_folder, tmp_path):
    (background_folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    recipe = recipe_from_dict(small_recipe(face_folder, background_folder))
    one = render_to_folder(recipe, tmp_path / "one", data_root="/", workers=1)
    two = render_to_folder(recipe, tmp_path / "two", data_root="/", workers=2)
    assert sum(one.unreadable_backgrounds.values()) > 0
    assert one.unreadable_backgrounds == two.unreadable_backgrounds
    assert shard_bytes(tmp_path / "one") == shard_bytes(tmp_path / "two")
    assert (tmp_path / "one" / "manifest.json").read_bytes() == (tmp_path / "two" / "manifest.json").read_bytes()


def test_changed_faces_rerender_shards(face_folder, background_folder, tmp_path):
    from testdata import face_on_black, write_rgb

    recipe = recipe_from_dict(small_recipe(face_folder, background_folder))
    out = tmp_path / "out"
    render_to_folder(recipe, out, data_root="/")
    before = shard_bytes(out)
    write_rgb(face_folder / "happy" / "S000_01.png", face_on_black(5) // 2 + 10)
    summary = render_to_folder(recipe, out, data_root="/")
    assert summary.rendered_shards == 3
    assert summary.reused_shards == 0
    fresh = tmp_path / "fresh"
    render_to_folder(recipe, fresh, data_root="/")
    assert shard_bytes(out) == shard_bytes(fresh)
    assert shard_bytes(out) != before


def test_interrupted_run_of_other_recipe_is_detected(face_folder, background_folder, tmp_path):
    big = recipe_from_dict(small_recipe(face_folder, background_folder, output={"samples": 40}))
    small = recipe_from_dict(small_recipe(face_folder, background_folder))
    out = tmp_path / "out"
    render_to_folder(big, out, data_root="/")
    (out / "manifest.json").unlink()  # as if the big run had been killed before its manifest
    with pytest.raises(ShardError, match="contains shards of another recipe"):
        render_to_folder(small, out, data_root="/")
    render_to_folder(small, out, data_root="/", overwrite=True)
    assert sorted(path.name for path in out.glob("*.tar")) == ["shard-000000.tar", "shard-000001.tar",
                                                               "shard-000002.tar"]
    assert sorted(path.name for path in (out / STATE_DIR).glob("*.json")) == [
        "shard-000000.tar.json", "shard-000001.tar.json", "shard-000002.tar.json"]
    assert verify_folder(out).ok


def test_verify_reports_unlisted_shard(recipe, tmp_path):
    out = tmp_path / "out"
    render_to_folder(recipe, out, data_root="/")
    (out / "shard-000007.tar").write_bytes((out / "shard-000000.tar").read_bytes())
    problems = verify_folder(out).problems
    assert problems == ["shard-000007.tar: not listed in the manifest (left by another run?); delete it, or "
                        "render again into a new folder"]
