"""The per-sample dict that both datasets yield, and :func:`collate` that batches it.

A sample dict has these keys (unbatched shapes):

- ``composite``: float32 (3, H, W) in [0, 1], RGB;
- ``target``: float32 (3, H, W) in [0, 1], the face times its mask;
- ``mask``: float32 (1, H, W) in [0, 1];
- ``label``: int, the class id;
- ``theta``: float32 (2, 3), the ``affine_grid`` matrix from the output to the face canvas;
- ``meta``: dict, the sample's metadata as stored in the shard's ``.json`` member, plus ``key``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import get_worker_info

SAMPLE_KEYS = ("composite", "target", "mask", "label", "theta", "meta")
_IMAGE_KEYS = ("composite", "target", "mask")
_INVERSE_255 = np.float32(1.0 / 255.0)


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """Convert uint8 (H, W, C) or (H, W) to float32 (C, H, W) in [0, 1].

    Every uint8 value ``v`` becomes ``float32(v) * float32(1 / 255)``, the
    conversion of :func:`fergen.render.to_float`, so ``round(x * 255)``
    recovers ``v`` exactly.
    """
    if image.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got dtype {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    # numpy, not torch: small torch ops in the main process wait on torch's thread pool.
    planar = np.empty((image.shape[2], image.shape[0], image.shape[1]), dtype=np.float32)
    np.multiply(image.transpose(2, 0, 1), _INVERSE_255, out=planar)
    return torch.from_numpy(planar)


def make_sample(composite: np.ndarray, target: np.ndarray, mask: np.ndarray, label: int, theta: np.ndarray,
                meta: dict[str, Any]) -> dict[str, Any]:
    """Build a sample dict from uint8 (H, W, 3) composite and target, uint8 (H, W) mask and (2, 3) theta."""
    return {
        "composite": image_to_tensor(composite),
        "target": image_to_tensor(target),
        "mask": image_to_tensor(mask),
        "label": int(label),
        "theta": torch.as_tensor(np.asarray(theta, dtype=np.float32)),
        "meta": meta,
    }


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    # A batch made in a DataLoader worker reaches the main process through shared memory. Stacking
    # straight into a shared-memory tensor saves one copy, as torch's default_collate does.
    out = None
    if get_worker_info() is not None:
        first = tensors[0]
        storage = first._typed_storage()._new_shared(len(tensors) * first.numel(), device=first.device)
        out = first.new(storage).resize_(len(tensors), *first.shape)
    return torch.stack(tensors, 0, out=out)


def collate(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Batch sample dicts from :class:`RenderDataset` or :class:`ShardDataset`.

    Use it as ``DataLoader(dataset, batch_size=B, collate_fn=collate)``.

    Args:
        samples: B sample dicts with equal image sizes (see this module's docstring).

    Returns:
        A dict with these keys, in this order:

        - ``composite``: float32 (B, 3, H, W) in [0, 1];
        - ``target``: float32 (B, 3, H, W) in [0, 1];
        - ``mask``: float32 (B, 1, H, W) in [0, 1];
        - ``label``: int64 (B,);
        - ``theta``: float32 (B, 2, 3);
        - ``meta``: a list of B dicts.

    Raises:
        ValueError: if the list is empty, a sample lacks a key, or image sizes differ
            (the message names the sample's position and key).
    """
    if len(samples) == 0:
        raise ValueError("collate: the list of samples is empty")
    for position, sample in enumerate(samples):
        missing = [key for key in SAMPLE_KEYS if key not in sample]
        if missing:
            raise ValueError(f"collate: sample {position} lacks {missing}; expected the keys {list(SAMPLE_KEYS)} "
                             "of a fergen.torch dataset")
    batch: dict[str, Any] = {}
    for key in (*_IMAGE_KEYS, "theta"):
        first_shape = tuple(samples[0][key].shape)
        for position, sample in enumerate(samples):
            if tuple(sample[key].shape) != first_shape:
                raise ValueError(f"collate: sample {position} has {key} of shape {tuple(sample[key].shape)}, "
                                 f"sample 0 has {first_shape}. Samples of one batch need equal output sizes; "
                                 "do not mix datasets rendered at different sizes.")
        batch[key] = _stack([sample[key] for sample in samples])
    batch["label"] = torch.tensor([int(sample["label"]) for sample in samples], dtype=torch.int64)
    batch["meta"] = [sample["meta"] for sample in samples]
    return {key: batch[key] for key in SAMPLE_KEYS}
