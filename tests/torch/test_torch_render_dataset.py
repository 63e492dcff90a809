"""RenderDataset: equality with the numpy renderer and with shards, worker and epoch behaviour, splits."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import webdataset as wds
from torch.utils.data import DataLoader

from fergen.imageio import decode_image_bytes
from fergen.torch import RenderDataset, collate, split_indices


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """Convert float (C, H, W) in [0, 1] to uint8 (H, W, C), inverting the dataset's conversion."""
    return np.floor(tensor.numpy().transpose(1, 2, 0) * 255.0 + 0.5).astype(np.uint8)


@pytest.fixture(scope="module")
def dataset(small_recipe, small_renderer):
    return RenderDataset(small_recipe, renderer=small_renderer)


def test_items_equal_numpy_renderer(dataset, small_renderer):
    for index in (0, 7, 39):
        item = dataset[index]
        sample = small_renderer.sample(index, epoch=0)

        assert item["composite"].dtype == torch.float32
        assert item["composite"].shape == (3, 48, 64)
        assert item["target"].shape == (3, 48, 64)
        assert item["mask"].shape == (1, 48, 64)
        np.testing.assert_array_equal(to_uint8(item["composite"]), sample.composite)
        np.testing.assert_array_equal(to_uint8(item["target"]), sample.target)
        np.testing.assert_array_equal(to_uint8(item["mask"])[..., 0], sample.mask)
        assert item["label"] == sample.label
        np.testing.assert_array_equal(item["theta"].numpy(), sample.theta)
        assert item["meta"]["params"] == sample.metadata["params"]
        assert item["meta"]["key"] == f"{index:09d}"


def test_items_equal_shards_read_by_webdataset(dataset, small_shards):
    raw_samples = list(wds.WebDataset(str(small_shards / "shard-{000000..000003}.tar"), shardshuffle=False))

    assert len(raw_samples) == 40
    for raw in raw_samples:
        index = int(raw["__key__"])
        item = dataset[index]
        np.testing.assert_array_equal(to_uint8(item["composite"]), decode_image_bytes(raw["png"]))
        np.testing.assert_array_equal(to_uint8(item["target"]), decode_image_bytes(raw["face.png"]))
        np.testing.assert_array_equal(to_uint8(item["mask"])[..., 0], decode_image_bytes(raw["mask.png"]))
        assert item["label"] == int(raw["cls"])
        stored_meta = json.loads(raw["json"])
        # The shard stores the metadata as JSON, so compare it after the same round trip.
        meta = json.loads(json.dumps({key: value for key, value in item["meta"].items() if key != "key"}))
        assert meta == stored_meta


def batches_of(dataset, num_workers: int, **options) -> list[dict]:
    loader = DataLoader(dataset, batch_size=4, shuffle=False, num_workers=num_workers, collate_fn=collate, **options)
    return list(loader)


def test_worker_count_does_not_change_items(small_recipe, small_renderer):
    dataset = RenderDataset(small_recipe, renderer=small_renderer, length=16, epoch=3)

    in_process = batches_of(dataset, 0)
    in_workers = batches_of(dataset, 2)

    assert len(in_process) == len(in_workers) == 4
    for first, second in zip(in_process, in_workers):
        for key in ("composite", "target", "mask", "label", "theta"):
            assert torch.equal(first[key], second[key]), key
        assert first["meta"] == second["meta"]


def test_workers_never_repeat_draws(small_recipe, small_renderer):
    dataset = RenderDataset(small_recipe, renderer=small_renderer, length=24)

    seeds = []
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        for batch in batches_of(dataset, 2):
            seeds.extend(meta["params"]["noise_seed"] for meta in batch["meta"])

    assert len(seeds) == 48
    assert len(set(seeds)) == 48


def test_set_epoch_reaches_persistent_workers(small_recipe, small_renderer):
    dataset = RenderDataset(small_recipe, renderer=small_renderer, length=8)
    loader = DataLoader(dataset, batch_size=4, num_workers=2, persistent_workers=True, collate_fn=collate)

    first_epoch = list(loader)
    dataset.set_epoch(5)
    fifth_epoch = list(loader)

    reference = RenderDataset(small_recipe, renderer=small_renderer, length=8, epoch=5)
    expected = collate([reference[index] for index in range(8)])
    for key in ("composite", "target", "mask", "label", "theta"):
        assert torch.equal(torch.cat([batch[key] for batch in fifth_epoch]), expected[key]), key
    assert [meta["epoch"] for batch in fifth_epoch for meta in batch["meta"]] == [5] * 8
    assert [meta["epoch"] for batch in first_epoch for meta in batch["meta"]] == [0] * 8
    assert not torch.equal(torch.cat([batch["composite"] for batch in first_epoch]), expected["composite"])


def test_epoch_item_equals_renderer_sample(small_recipe, small_renderer):
    dataset = RenderDataset(small_recipe, renderer=small_renderer, epoch=2)

    item = dataset[5]

    np.testing.assert_array_equal(to_uint8(item["composite"]), small_renderer.sample(5, epoch=2).composite)
    assert dataset.epoch == 2


def test_split_carves_index_ranges():
    assert split_indices(40, "all", 0.1) == range(0, 40)
    assert split_indices(40, "train", 0.1) == range(0, 36)
    assert split_indices(40, "val", 0.1) == range(36, 40)
    assert split_indices(5, "val", 0.01) == range(4, 5)
    assert split_indices(5, "train", 0.0) == range(0, 5)


@pytest.mark.parametrize("split, fraction", [("val", 0.0), ("train", 0.99), ("test", 0.1), ("all", 1.0)])
def test_split_rejects_empty_or_unknown(split, fraction):
    with pytest.raises(ValueError):
        split_indices(10, split, fraction)


def test_split_length_and_indices(small_recipe, small_renderer):
    train = RenderDataset(small_recipe, renderer=small_renderer, split="train", length=100, val_fraction=0.2)
    val = RenderDataset(small_recipe, renderer=small_renderer, split="val", length=100, val_fraction=0.2)
    chosen = RenderDataset(small_recipe, renderer=small_renderer, indices=[1000, 3])

    assert len(train) == 80
    assert len(val) == 20
    assert val[0]["meta"]["index"] == 80
    assert len(chosen) == 2
    assert chosen[0]["meta"]["index"] == 1000
    assert chosen[-1]["meta"]["index"] == 3
    with pytest.raises(IndexError):
        chosen[2]


def test_conflicting_arguments_are_rejected(small_recipe, small_renderer):
    with pytest.raises(ValueError, match="indices"):
        RenderDataset(small_recipe, renderer=small_renderer, indices=[0], length=4)
    with pytest.raises(ValueError, match=">= 0"):
        RenderDataset(small_recipe, renderer=small_renderer, indices=[-1])
    with pytest.raises(ValueError, match="length"):
        RenderDataset(small_recipe, renderer=small_renderer, length=0)
    with pytest.raises(ValueError, match="epoch"):
        RenderDataset(small_recipe, renderer=small_renderer, epoch=-1)


def test_recipe_path_and_properties(tmp_path, small_recipe, face_cache):
    path = tmp_path / "small.yaml"
    path.write_text(small_recipe.canonical_yaml())

    dataset = RenderDataset(path, data_root=tmp_path, cache_dir=face_cache, length=3)

    assert dataset.recipe_sha256 == small_recipe.sha256
    assert dataset.recipe.sha256 == small_recipe.sha256
    assert dataset.class_names == ("lfw000", "lfw001", "lfw002", "lfw003")
    assert len(dataset) == 3


def test_renderer_of_other_recipe_is_rejected(small_recipe, demo_renderer):
    with pytest.raises(ValueError, match="renderer"):
        RenderDataset(small_recipe, renderer=demo_renderer)
