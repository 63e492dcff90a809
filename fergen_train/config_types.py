"""Training configuration dataclasses: every key, its default and its meaning.

:mod:`fergen_train.config` loads and validates them from YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field

VARIANT_NAMES = ("feratt-cls", "feratt-rep-cls", "baseline")


class ConfigError(ValueError):
    """A training config is invalid; the message names the source, key, value and fix."""


@dataclass(frozen=True)
class ModelConfig:
    """Model variant and architecture sizes (see :mod:`fergen_train.models`)."""

    variant: str = "feratt-rep-cls"
    #: Height and width of the input images in pixels.
    input_size: tuple[int, int] = (128, 128)
    #: Attention encoder: ``resnet34`` (as in FERAtt) or ``resnet18``.
    encoder: str = "resnet34"
    #: Channels of the encoder's first stage; torchvision weights need 64.
    encoder_width: int = 64
    #: Local torchvision state_dict for the encoder; ``None`` starts from random weights.
    encoder_weights: str | None = None
    #: Replace the strides of encoder stages 3 and 4 by dilation (output stride 8).
    dilation: bool = False
    decoder_width: int = 32
    feature_channels: int = 32
    feature_blocks: int = 4
    attention_channels: int = 1
    representation_dim: int = 64
    #: Channels of the PreActResNet18's first stage (64 is the standard network).
    classifier_width: int = 64


@dataclass(frozen=True)
class DataSourceConfig:
    """One dataset: a recipe rendered on the fly, or WebDataset shards."""

    #: Recipe YAML path, or the name of a recipe bundled with fergen (for example ``demo``).
    recipe: str | None = None
    #: Shard URLs or paths; brace patterns such as ``train-{000000..000009}.tar`` expand.
    shards: tuple[str, ...] | None = None
    #: Folder that the recipe's relative face and background paths are resolved against.
    data_root: str | None = None
    #: Recipe sample indices to use: ``all``, ``train`` (all but the last
    #: ``val_fraction``) or ``val`` (the last ``val_fraction``). The two parts
    #: share faces and differ only in their renders.
    split: str = "all"
    val_fraction: float = 0.1
    #: Number of samples to carve the split from; ``None`` uses the recipe's ``output.samples``.
    length: int | None = None
    #: Replace the recipe's ``faces.subjects.fold.part`` (``train`` or ``test``) for
    #: subject-independent evaluation.
    fold_part: str | None = None
    #: Shuffle buffer in samples when training on shards (0 keeps the stored order).
    shuffle_buffer: int = 1000


@dataclass(frozen=True)
class DataConfig:
    """Training data, optional validation data and DataLoader workers."""

    train: DataSourceConfig | None = None
    val: DataSourceConfig | None = None
    num_workers: int = 2


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser settings.

    The defaults (Adam, batch 200, 60 epochs) are the FERAtt training setup
    (arXiv 1902.03284). The learning rate 1e-4 is the value in the FERAtt
    authors' training script (github.com/pedrodiamel/ferattention, runs/train.sh).
    """

    optimizer: str = "adam"
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = 200
    epochs: int = 60
    #: ``constant`` or ``cosine`` (cosine annealing to 0 over ``epochs``, stepped per epoch).
    schedule: str = "constant"
    #: Maximum gradient L2 norm; ``None`` disables clipping.
    grad_clip_norm: float | None = None


@dataclass(frozen=True)
class LossConfig:
    """Loss terms and their weights (see :mod:`fergen_train.losses`)."""

    #: ``ce`` (cross-entropy) or ``bce`` (binary cross-entropy on one-hot targets).
    classification: str = "ce"
    attention_weight: float = 1.0
    classification_weight: float = 1.0
    representation_weight: float = 1.0
    #: Standard deviation of the isotropic class Gaussians in representation space.
    sigma: float = 1.0
    #: Class priors for the Gaussian posteriors; ``None`` means uniform.
    priors: tuple[float, ...] | None = None
    #: ``batch`` (class means of the batch) or ``running`` (running means fill in
    #: classes missing from a batch).
    class_means: str = "batch"
    #: Weight of the batch mean in each running-mean update.
    momentum: float = 0.1


@dataclass(frozen=True)
class RuntimeConfig:
    """Device, precision and bookkeeping."""

    #: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
    device: str = "auto"
    #: ``auto`` (bf16 autocast on CUDA, off on CPU), ``bf16`` or ``off``.
    amp: str = "auto"
    #: ``auto`` (on for CUDA), ``on`` or ``off``.
    channels_last: str = "auto"
    #: Ask torch for deterministic algorithms (slower on CUDA).
    deterministic: bool = False
    #: Number of ``epoch_NNN.pt`` checkpoints kept in the output folder.
    keep_checkpoints: int = 1
    #: Stop each training epoch after this many steps; ``None`` runs the whole loader.
    steps_per_epoch: int | None = None


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run."""

    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
