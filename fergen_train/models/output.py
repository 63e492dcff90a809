"""The typed result of every model's forward pass."""

from __future__ import annotations

from typing import NamedTuple

import torch


class ModelOutput(NamedTuple):
    """Outputs of a fergen_train model for a batch of B images of size H x W.

    Attributes:
        logits: Unnormalised class scores, float (B, num_classes).
        representation: Embedding that the Gaussian manifold loss structures,
            float (B, representation_dim).
        attention_image: Reconstructed face-only image that the attention loss
            compares with the target, float (B, 3, 32, 32), roughly in [0, 1].
            ``None`` for the baseline.
        attention_map: ``sigmoid`` of the attention module's output, float
            (B, attention_channels, H, W) in [0, 1]. ``None`` for the baseline.
    """

    logits: torch.Tensor
    representation: torch.Tensor
    attention_image: torch.Tensor | None = None
    attention_map: torch.Tensor | None = None
