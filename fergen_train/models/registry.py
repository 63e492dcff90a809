"""Model variants by name, and construction with an explicit random generator."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
from torch import nn

from fergen_train.config import ModelConfig
from fergen_train.models.feratt import FERAtt, Baseline
from fergen_train.models.resnet import build_resnet, load_encoder_weights

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    """A named model and the loss terms it trains with."""

    name: str
    description: str
    #: The model has an attention module, so the attention loss applies.
    attention: bool
    #: The Gaussian manifold loss on the representation applies.
    representation_loss: bool


VARIANTS = {
    "feratt-cls": Variant(
        "feratt-cls",
        "FERAtt trained with the attention and classification losses",
        attention=True,
        representation_loss=False,
    ),
    "feratt-rep-cls": Variant(
        "feratt-rep-cls",
        "FERAtt trained with the attention, Gaussian manifold and classification losses",
        attention=True,
        representation_loss=True,
    ),
    "baseline": Variant(
        "baseline",
        "PreActResNet18 on the image resized to 32x32, trained with the classification loss",
        attention=False,
        representation_loss=False,
    ),
}


def get_variant(name: str) -> Variant:
    """Look up a variant by name.

    Raises:
        ValueError: naming the unknown variant and the valid names.
    """
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown model variant {name!r}; expected one of {', '.join(VARIANTS)}") from None


def init_parameters(model: nn.Module, generator: torch.Generator | None = None) -> None:
    """Initialise every parameter and buffer of ``model`` from ``generator``.

    Convolutions get He normal weights (fan_out, as torchvision's ResNets) and
    zero biases. Linear layers get PyTorch's default uniform(-1/sqrt(fan_in),
    1/sqrt(fan_in)). Batch norms get weight 1, bias 0 and reset running
    statistics.

    Raises:
        TypeError: if a module with parameters is of another type, so a new
            layer cannot silently keep uninitialised memory.
    """
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
                module.reset_running_stats()
            elif isinstance(module, nn.Linear):
                bound = 1.0 / math.sqrt(module.in_features)
                nn.init.uniform_(module.weight, -bound, bound, generator=generator)
                if module.bias is not None:
                    nn.init.uniform_(module.bias, -bound, bound, generator=generator)
            elif any(True for _ in module.parameters(recurse=False)):
                raise TypeError(f"init_parameters does not know how to initialise {name} ({type(module).__name__})")


def build_model(
    config: ModelConfig,
    num_classes: int,
    generator: torch.Generator | None = None,
    load_weights: bool = True,
) -> nn.Module:
    """Build the variant that ``config`` names, on the CPU.

    The modules are created on the meta device and then initialised by
    :func:`init_parameters`, so the global torch RNG is neither read nor
    advanced. Equal generator states give equal weights.

    Args:
        config: Architecture settings.
        num_classes: Number of output classes.
        generator: CPU generator for the initial weights; ``None`` uses a
            generator seeded with 0.
        load_weights: Load ``config.encoder_weights`` into the attention
            encoder. Pass ``False`` when a checkpoint will overwrite the weights.

    Raises:
        ValueError: on an unknown variant or ``num_classes < 2``.
        FileNotFoundError, EncoderWeightsError: if the encoder weights cannot be loaded.
    """
    variant = get_variant(config.variant)
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    if generator is None:
        generator = torch.Generator().manual_seed(0)

    with torch.device("meta"):
        if variant.attention:
            dilate = (False, config.dilation, config.dilation)
            encoder = build_resnet(config.encoder, width=config.encoder_width, dilate=dilate)
            model: nn.Module = FERAtt(
                encoder,
                num_classes,
                decoder_width=config.decoder_width,
                feature_channels=config.feature_channels,
                feature_blocks=config.feature_blocks,
                attention_channels=config.attention_channels,
                representation_dim=config.representation_dim,
                classifier_width=config.classifier_width,
            )
        else:
            model = Baseline(num_classes, config.representation_dim, config.classifier_width)
    model = model.to_empty(device="cpu")
    init_parameters(model, generator)

    if variant.attention and load_weights:
        if config.encoder_weights is not None:
            load_encoder_weights(model.attention.encoder, config.encoder_weights)
        else:
            logger.warning(
                "model.encoder_weights is not set: the %s attention encoder starts from random "
                "weights; pass --encoder-weights PATH with a local torchvision %s state_dict "
                "to start from ImageNet weights",
                config.encoder,
                config.encoder,
            )
    return model
