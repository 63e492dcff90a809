"""ShardDataset on shards written by fergen's engine: splitting, shuffling, equality and damaged shards."""

from __future__ import annotations

import io
import logging
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import fsspec
import numpy as np
import pytest
import torch
import webdataset as wds
from torch.utils.data import DataLoader

from fergen.errors import ShardError
from fergen.torch import RenderDataset, ShardDataset, collate, decode_sample, expand_urls
from fergen.torch.shard_dataset import plan_reading
from fergen.torch.workers import WorkerSlot

ALL_KEYS = [f"{index:09d}" for index in range(40)]


def keys_from_loader(dataset, num_workers: int) -> list[str]:
    loader = DataLoader(dataset, batch_size=3, num_workers=num_workers, collate_fn=collate)
    return [meta["key"] for batch in loader for meta in batch["meta"]]


def shard_paths(folder: Path, shards) -> list[str]:
    return [str(folder / f"shard-{shard:06d}.tar") for shard in shards]


@pytest.mark.parametrize("shards", [[0, 1, 2, 3], [0, 1, 2], [2]])
def test_two_ranks_two_workers_read_each_sample_once(small_shards, shards):
    expected = [f"{index:09d}" for shard in shards for index in range(shard * 10, shard * 10 + 10)]

    per_rank = []
    for rank in (0, 1):
        dataset = ShardDataset(shard_paths(small_shards, shards), rank=rank, world_size=2)
        keys = keys_from_loader(dataset, num_workers=2)
        assert len(keys) == len(dataset)
        per_rank.append(keys)

    everything = per_rank[0] + per_rank[1]
    assert len(everything) == len(expected)
    assert sorted(everything) == expected
    assert not set(per_rank[0]) & set(per_rank[1])


def test_plan_splits_shards_then_samples():
    shards = ["a", "b", "c", "d", "e"]

    assert plan_reading(shards, WorkerSlot(rank=1, world_size=2, worker=0, num_workers=2)).shards == ["b"]
    assert plan_reading(shards, WorkerSlot(rank=1, world_size=2, worker=1, num_workers=2)).shards == ["d"]
    shared = plan_reading(shards, WorkerSlot(rank=0, world_size=2, worker=1, num_workers=4))
    assert (shared.shards, shared.stride, shared.offset) == (["a", "c", "e"], 4, 1)
    scarce = plan_reading(["a"], WorkerSlot(rank=1, world_size=2, worker=1, num_workers=2))
    assert (scarce.shards, scarce.stride, scarce.offset) == (["a"], 4, 3)


def test_reads_folder_with_class_names(small_shards, small_renderer):
    dataset = ShardDataset(small_shards)

    items = list(dataset)

    assert dataset.class_names == small_renderer.class_names
    assert len(dataset) == 40
    assert [item["meta"]["key"] for item in items] == ALL_KEYS
    assert Counter(item["label"] for item in items) == Counter(
        int(small_renderer.faces.labels[small_renderer.plan(index)[0]]) for index in range(40))


def test_exposes_recipe_sha256(small_shards, small_recipe):
    assert ShardDataset(small_shards).recipe_sha256 == small_recipe.sha256


def test_missing_local_shard_raises_with_path(small_shards):
    pattern = str(Path(small_shards) / "shard-{000000..000009}.tar")
    with pytest.raises(ShardError, match=r"shard-000004.tar not found \(6 of 10 local shards are missing\)"):
        ShardDataset(pattern)


def test_items_equal_render_dataset(small_shards, small_recipe, small_renderer):
    rendered = RenderDataset(small_recipe, renderer=small_renderer)

    for item in ShardDataset(str(small_shards / "shard-{000001..000002}.tar")):
        expected = rendered[item["meta"]["index"]]
        for key in ("composite", "target", "mask", "theta"):
            assert torch.equal(item[key], expected[key]), key
        assert item["label"] == expected["label"]
        assert item["meta"]["url"].endswith(".tar")


def test_shuffle_is_seeded_and_changes_with_epoch(small_shards):
    def order(seed: int, epoch: int) -> list[str]:
        return [item["meta"]["key"] for item in ShardDataset(small_shards, shuffle=16, seed=seed, epoch=epoch)]

    first = order(seed=3, epoch=0)

    assert sorted(first) == ALL_KEYS
    assert first != ALL_KEYS
    assert order(seed=3, epoch=0) == first
    assert order(seed=3, epoch=1) != first
    assert order(seed=4, epoch=0) != first


def test_set_epoch_reaches_workers(small_shards):
    dataset = ShardDataset(small_shards, shuffle=8, seed=1)
    loader = DataLoader(dataset, batch_size=5, num_workers=2, persistent_workers=True, collate_fn=collate)

    epoch_zero = [meta["key"] for batch in loader for meta in batch["meta"]]
    dataset.set_epoch(1)
    epoch_one = [meta["key"] for batch in loader for meta in batch["meta"]]
    dataset.set_epoch(0)
    epoch_zero_again = [meta["key"] for batch in loader for meta in batch["meta"]]

    assert sorted(epoch_one) == ALL_KEYS
    assert epoch_one != epoch_zero
    assert epoch_zero_again == epoch_zero


def test_webdataset_pipeline_with_decode_sample(small_shards):
    pipeline = (wds.WebDataset(str(small_shards / "shard-{000000..000003}.tar"), shardshuffle=False,
                               nodesplitter=wds.split_by_node, workersplitter=wds.split_by_worker)
                .map(decode_sample))
    loader = DataLoader(pipeline, batch_size=4, num_workers=2, collate_fn=collate)

    keys = []
    for batch in loader:
        assert batch["composite"].shape == (4, 3, 48, 64)
        assert batch["mask"].shape == (4, 1, 48, 64)
        assert batch["label"].dtype == torch.int64
        assert batch["theta"].shape == (4, 2, 3)
        keys.extend(meta["key"] for meta in batch["meta"])

    assert sorted(keys) == ALL_KEYS


def test_fsspec_url(small_shards):
    memory = fsspec.filesystem("memory")
    memory.pipe("/fergen-tests/shard-000003.tar", (small_shards / "shard-000003.tar").read_bytes())

    dataset = ShardDataset("memory://fergen-tests/shard-000003.tar")
    keys = [item["meta"]["key"] for item in dataset]

    assert keys == ALL_KEYS[30:]
    assert dataset.class_names is None
    with pytest.raises(TypeError, match="no length"):
        len(dataset)


def test_expand_urls(small_shards):
    listed = expand_urls([str(small_shards / "shard-{000000..000001}.tar"), str(small_shards / "shard-000003.tar")])

    assert listed == shard_paths(small_shards, [0, 1, 3])
    assert expand_urls(str(small_shards)) == shard_paths(small_shards, [0, 1, 2, 3])
    with pytest.raises(ShardError, match="manifest.json"):
        expand_urls(str(small_shards / ".fergen"))


def copy_shards(source: Path, target: Path) -> Path:
    target.mkdir()
    for path in source.glob("shard-*.tar"):
        shutil.copy(path, target / path.name)
    shutil.copy(source / "manifest.json", target / "manifest.json")
    return target


def complete_keys_before(path: Path, cut: int) -> list[str]:
    """Return the keys whose members all end before byte ``cut`` of a tar."""
    ends: dict[str, int] = {}
    with tarfile.open(path) as archive:
        for member in archive.getmembers():
            key = member.name.split(".", 1)[0]
            ends[key] = max(ends.get(key, 0), member.offset_data + member.size)
    return sorted(key for key, end in ends.items() if end <= cut)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_truncated_shard_is_reported_and_skipped(small_shards, tmp_path, caplog, num_workers):
    folder = copy_shards(small_shards, tmp_path / "shards")
    damaged = folder / "shard-000001.tar"
    cut = damaged.stat().st_size // 2 + 100
    kept = complete_keys_before(damaged, cut)
    damaged.write_bytes(damaged.read_bytes()[:cut])
    expected = ALL_KEYS[:10] + kept + ALL_KEYS[20:]

    with caplog.at_level(logging.WARNING, logger="fergen.torch.shard_dataset"):
        keys = keys_from_loader(ShardDataset(folder, max_errors=1), num_workers)

    assert 0 < len(kept) < 10
    assert sorted(keys) == expected
    if num_workers == 0:
        first_lost = f"{int(kept[-1]) + 1:09d}"
        messages = [record.getMessage() for record in caplog.records]
        assert len(messages) == 1
        assert "shard-000001.tar" in messages[0]
        assert f"at sample {first_lost}" in messages[0]


def test_truncated_shard_beyond_max_errors_raises(small_shards, tmp_path):
    folder = copy_shards(small_shards, tmp_path / "shards")
    damaged = folder / "shard-000002.tar"
    damaged.write_bytes(damaged.read_bytes()[:5000])

    with pytest.raises(ShardError, match=r"shard-000002\.tar: unreadable tar at sample 000000020"):
        list(ShardDataset(folder, max_errors=0))


def rewrite_member(path: Path, name: str, data: bytes) -> None:
    """Rewrite a tar with the bytes of member ``name`` replaced."""
    with tarfile.open(path) as archive:
        members = [(member, archive.extractfile(member).read()) for member in archive.getmembers()]
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as archive:
        for member, content in members:
            content = data if member.name == name else content
            member.size = len(content)
            archive.addfile(member, io.BytesIO(content))


def test_corrupt_member_skips_one_sample(small_shards, tmp_path, caplog):
    folder = copy_shards(small_shards, tmp_path / "shards")
    rewrite_member(folder / "shard-000000.tar", "000000004.mask.png", b"not a png")

    with caplog.at_level(logging.WARNING, logger="fergen.torch.shard_dataset"):
        keys = [item["meta"]["key"] for item in ShardDataset(folder, max_errors=1)]

    assert keys == ALL_KEYS[:4] + ALL_KEYS[5:]
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1
    assert "shard-000000.tar: sample 000000004 mask.png" in messages[0]


def test_missing_member_and_short_shard_are_reported(small_shards, tmp_path, caplog):
    folder = copy_shards(small_shards, tmp_path / "shards")
    path = folder / "shard-000003.tar"
    with tarfile.open(path) as archive:
        members = [(member, archive.extractfile(member).read()) for member in archive.getmembers()]
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as archive:
        for member, content in members:
            if member.name == "000000031.json" or member.name.startswith("000000039."):
                continue
            archive.addfile(member, io.BytesIO(content))

    with caplog.at_level(logging.WARNING, logger="fergen.torch.shard_dataset"):
        keys = [item["meta"]["key"] for item in ShardDataset(str(path), max_errors=2)]

    assert keys == [key for key in ALL_KEYS[30:] if key not in ("000000031", "000000039")]
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert "sample 000000031 has members" in messages[0]
    assert "shard-000003.tar: 9 samples, its manifest lists 10" in messages[1]


def test_arguments_are_checked(small_shards):
    with pytest.raises(ValueError, match="shuffle"):
        ShardDataset(small_shards, shuffle=-1)
    with pytest.raises(ValueError, match="max_errors"):
        ShardDataset(small_shards, max_errors=-1)
    with pytest.raises(ValueError, match="rank"):
        ShardDataset(small_shards, rank=2, world_size=2)
    with pytest.raises(ValueError, match="both"):
        ShardDataset(small_shards, rank=0)


def test_decoded_images_are_float_in_unit_range(small_shards):
    item = next(iter(ShardDataset(small_shards)))

    for key, channels in (("composite", 3), ("target", 3), ("mask", 1)):
        assert item[key].dtype == torch.float32
        assert item[key].shape == (channels, 48, 64)
        assert float(item[key].min()) >= 0.0
        assert float(item[key].max()) <= 1.0
    assert np.isfinite(item["theta"].numpy()).all()
