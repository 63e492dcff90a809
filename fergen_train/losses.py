"""FERAtt losses: attention reconstruction, classification and the Gaussian manifold loss.

The total loss of a variant is a weighted sum of the terms it uses
(:class:`FERAttLoss`). Every term is computed in float32, also under bf16
autocast, because the posteriors of the Gaussian manifold loss underflow in
bf16.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fergen_train.config import LossConfig
from fergen_train.models.output import ModelOutput
from fergen_train.models.registry import get_variant


def resize_area(images: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Downsample (B, C, H, W) images to ``size`` by area averaging.

    This is adaptive average pooling, which equals a k x k mean when H and W
    are multiples of the output size, as for 128 to 32.
    """
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.adaptive_avg_pool2d(images, tuple(size))


def attention_loss(attention_image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the attention image and the face-only target.

    Args:
        attention_image: (B, 3, h, w), the model's reconstruction (32x32 in FERAtt).
        target: (B, 3, H, W) face times mask in [0, 1]; area-resized to (h, w).

    Returns:
        Scalar float32 mean over all B * 3 * h * w elements.
    """
    if attention_image.shape[:2] != target.shape[:2]:
        raise ValueError(
            f"attention image {tuple(attention_image.shape)} and target {tuple(target.shape)} "
            "differ in batch size or channels"
        )
    target = resize_area(target.float(), attention_image.shape[-2:])
    return F.mse_loss(attention_image.float(), target)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, kind: str = "ce") -> torch.Tensor:
    """Cross-entropy, or binary cross-entropy on one-hot targets.

    Args:
        logits: (B, K) unnormalised scores.
        labels: (B,) int64 class indices in [0, K).
        kind: ``ce`` for softmax cross-entropy. ``bce`` for a sigmoid binary
            cross-entropy of each class against the one-hot label, averaged
            over all B * K entries.
    """
    logits = logits.float()
    if kind == "ce":
        return F.cross_entropy(logits, labels)
    if kind == "bce":
        one_hot = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
        return F.binary_cross_entropy_with_logits(logits, one_hot)
    raise ValueError(f"unknown classification loss {kind!r}; expected 'ce' or 'bce'")


def gaussian_posteriors(
    representation: torch.Tensor,
    means: torch.Tensor,
    sigma: float,
    log_priors: torch.Tensor,
    available: torch.Tensor | None = None,
) -> torch.Tensor:
    """Class posteriors under isotropic Gaussians with a shared sigma.

    ``p(c | z) = P(c) N(z; mu_c, sigma^2 I) / sum_j P(j) N(z; mu_j, sigma^2 I)``.
    Because every class has the same covariance, the normalising constants
    cancel and the posterior is ``softmax_c(log P(c) - |z - mu_c|^2 / (2 sigma^2))``.

    Args:
        representation: (B, D) float.
        means: (K, D) class means.
        sigma: Standard deviation of every Gaussian, > 0.
        log_priors: (K,) log class priors.
        available: (K,) bool; classes marked False get posterior 0. ``None``
            uses every class.

    Returns:
        (B, K) posteriors; each row sums to 1.
    """
    # The explicit difference is exact; torch.cdist switches to a matrix-product
    # formula for larger batches that loses precision near zero distance.
    squared_distance = (representation.unsqueeze(1) - means.unsqueeze(0)).pow(2).sum(dim=2)
    scores = log_priors - squared_distance / (2.0 * sigma**2)
    if available is not None:
        scores = scores.masked_fill(~available, float("-inf"))
    return torch.softmax(scores, dim=1)


class GaussianManifoldLoss(nn.Module):
    """Structured Gaussian manifold loss on the representation.

    For each sample, the posterior over classes is computed from isotropic
    Gaussians around the class means (:func:`gaussian_posteriors`). The loss is
    the squared error between posterior and one-hot label, summed over classes
    and averaged over the batch.

    Class means come from the batch. With ``class_means="batch"`` a class that
    is missing from the batch gets posterior 0. With ``"running"`` it uses its
    running mean instead (an exponential moving average of earlier batch
    means, updated in training mode), and is left out only until it has
    appeared once. Gradients flow through the batch means, not the running ones.

    Args:
        num_classes: K.
        representation_dim: D.
        sigma: Standard deviation of the Gaussians, > 0.
        priors: K positive class priors, normalised to sum to 1; ``None`` is uniform.
        class_means: ``batch`` or ``running``.
        momentum: Weight of the batch mean in a running-mean update, in (0, 1].
    """

    def __init__(
        self,
        num_classes: int,
        representation_dim: int,
        sigma: float = 1.0,
        priors: Sequence[float] | None = None,
        class_means: str = "batch",
        momentum: float = 0.1,
    ) -> None:
        super().__init__()
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        if class_means not in ("batch", "running"):
            raise ValueError(f"class_means must be 'batch' or 'running', got {class_means!r}")
        if not 0.0 < momentum <= 1.0:
            raise ValueError(f"momentum must be in (0, 1], got {momentum}")
        if priors is None:
            priors = [1.0 / num_classes] * num_classes
        if len(priors) != num_classes or any(p <= 0 for p in priors):
            raise ValueError(
                f"priors must be {num_classes} positive numbers, one a class, got {list(priors)}; "
                "set loss.priors to one value per class or remove it for uniform priors"
            )
        prior_tensor = torch.tensor(priors, dtype=torch.float32)
        self.num_classes = num_classes
        self.sigma = float(sigma)
        self.class_means = class_means
        self.momentum = float(momentum)
        self.register_buffer("log_priors", torch.log(prior_tensor / prior_tensor.sum()), persistent=False)
        self.register_buffer("running_means", torch.zeros(num_classes, representation_dim))
        self.register_buffer("running_seen", torch.zeros(num_classes, dtype=torch.bool))

    def batch_means(self, representation: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the per-class means of the batch (K, D) and the present classes (K,) bool."""
        one_hot = F.one_hot(labels, self.num_classes).to(representation.dtype)
        counts = one_hot.sum(dim=0)
        sums = one_hot.t() @ representation
        present = counts > 0
        means = sums / counts.clamp(min=1.0).unsqueeze(1)
        return means, present

    def forward(self, representation: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Compute the loss for (B, D) representations and (B,) int64 labels."""
        representation = representation.float()
        means, present = self.batch_means(representation, labels)
        available = present
        if self.class_means == "running":
            fallback = ~present & self.running_seen
            means = torch.where(fallback.unsqueeze(1), self.running_means, means)
            available = present | self.running_seen
            if self.training:
                self._update_running_means(means.detach(), present)

        posteriors = gaussian_posteriors(representation, means, self.sigma, self.log_priors, available)
        one_hot = F.one_hot(labels, self.num_classes).to(posteriors.dtype)
        return (posteriors - one_hot).pow(2).sum(dim=1).mean()

    @torch.no_grad()
    def _update_running_means(self, batch_means: torch.Tensor, present: torch.Tensor) -> None:
        blended = (1.0 - self.momentum) * self.running_means + self.momentum * batch_means
        # A class seen for the first time starts at its batch mean.
        updated = torch.where(self.running_seen.unsqueeze(1), blended, batch_means)
        self.running_means.copy_(torch.where(present.unsqueeze(1), updated, self.running_means))
        self.running_seen.logical_or_(present)


@dataclass(frozen=True)
class LossTerms:
    """The weighted total loss and the unweighted value of each term.

    ``terms`` has the keys ``classification``, ``attention`` and
    ``representation``, each only when the variant uses that term.
    """

    total: torch.Tensor
    terms: Mapping[str, torch.Tensor]


class FERAttLoss(nn.Module):
    """The weighted sum of the loss terms that a model variant trains with.

    ``feratt-cls`` uses attention and classification, ``feratt-rep-cls`` adds
    the Gaussian manifold term, and ``baseline`` uses classification only.
    """

    def __init__(self, config: LossConfig, variant: str, num_classes: int, representation_dim: int) -> None:
        super().__init__()
        spec = get_variant(variant)
        self.config = config
        self.use_attention = spec.attention
        self.representation = None
        if spec.representation_loss:
            self.representation = GaussianManifoldLoss(
                num_classes,
                representation_dim,
                sigma=config.sigma,
                priors=config.priors,
                class_means=config.class_means,
                momentum=config.momentum,
            )

    def forward(self, output: ModelOutput, batch: Mapping[str, torch.Tensor]) -> LossTerms:
        """Compute the loss of ``output`` against a batch with ``label`` and ``target``."""
        labels = batch["label"]
        terms = {"classification": classification_loss(output.logits, labels, self.config.classification)}
        total = self.config.classification_weight * terms["classification"]
        if self.use_attention:
            if output.attention_image is None:
                raise ValueError("the variant uses the attention loss but the model returned no attention image")
            terms["attention"] = attention_loss(output.attention_image, batch["target"])
            total = total + self.config.attention_weight * terms["attention"]
        if self.representation is not None:
            terms["representation"] = self.representation(output.representation, labels)
            total = total + self.config.representation_weight * terms["representation"]
        return LossTerms(total=total, terms=terms)
