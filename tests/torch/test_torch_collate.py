"""collate: the batch contract shared with fergen_train, its errors, and fergen importing without torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from fergen.torch import SAMPLE_KEYS, RenderDataset, collate
from fergen.torch.samples import image_to_tensor, make_sample


def fake_sample(label: int, height: int = 6, width: int = 5) -> dict:
    rng = np.random.default_rng(label)
    return make_sample(rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
                       rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
                       rng.integers(0, 256, (height, width), dtype=np.uint8),
                       label, np.eye(2, 3, dtype=np.float32), {"index": label})


def test_batch_contract():
    samples = [fake_sample(label) for label in (2, 0, 1)]

    batch = collate(samples)

    assert tuple(batch) == SAMPLE_KEYS
    assert batch["composite"].dtype == torch.float32
    assert batch["composite"].shape == (3, 3, 6, 5)
    assert batch["target"].dtype == torch.float32
    assert batch["target"].shape == (3, 3, 6, 5)
    assert batch["mask"].dtype == torch.float32
    assert batch["mask"].shape == (3, 1, 6, 5)
    assert batch["label"].dtype == torch.int64
    assert batch["label"].tolist() == [2, 0, 1]
    assert batch["theta"].dtype == torch.float32
    assert batch["theta"].shape == (3, 2, 3)
    assert batch["meta"] == [{"index": 2}, {"index": 0}, {"index": 1}]
    assert torch.equal(batch["composite"][1], samples[1]["composite"])


def test_collate_in_workers_matches_main_process(small_recipe, small_renderer):
    dataset = RenderDataset(small_recipe, renderer=small_renderer, length=6)

    in_worker = next(iter(DataLoader(dataset, batch_size=6, num_workers=1, collate_fn=collate)))
    in_process = collate([dataset[index] for index in range(6)])

    for key in ("composite", "target", "mask", "label", "theta"):
        assert torch.equal(in_worker[key], in_process[key]), key


def test_image_conversion_is_exact():
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)

    tensor = image_to_tensor(values)

    assert tensor.shape == (1, 16, 16)
    assert float(tensor.min()) == 0.0
    assert float(tensor.max()) == 1.0
    np.testing.assert_array_equal(np.floor(tensor.numpy()[0] * 255.0 + 0.5).astype(np.uint8), values)
    with pytest.raises(TypeError, match="uint8"):
        image_to_tensor(values.astype(np.float32))


def test_mixed_sizes_name_the_sample():
    with pytest.raises(ValueError, match=r"sample 1 has composite of shape \(3, 7, 5\)"):
        collate([fake_sample(0), fake_sample(1, height=7)])


def test_missing_key_and_empty_batch():
    incomplete = fake_sample(0)
    del incomplete["theta"]

    with pytest.raises(ValueError, match=r"sample 0 lacks \['theta'\]"):
        collate([incomplete])
    with pytest.raises(ValueError, match="is empty"):
        collate([])


def test_fergen_imports_without_torch():
    code = ("import sys\n"
            "import fergen, fergen.pipeline, fergen.engine, fergen.shards, fergen.render\n"
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))\n")

    subprocess.run([sys.executable, "-c", code], check=True)
