"""FERAtt, its PreActResNet18 baseline and the variant registry."""

from fergen_train.models.feratt import ATTENTION_IMAGE_SIZE, FERAtt, Baseline
from fergen_train.models.output import ModelOutput
from fergen_train.models.preact_resnet import PreActResNet18
from fergen_train.models.registry import VARIANTS, Variant, build_model, get_variant, init_parameters
from fergen_train.models.resnet import (
    EncoderWeightsError,
    ResNet,
    build_resnet,
    load_encoder_state_dict,
    load_encoder_weights,
)

__all__ = [
    "ATTENTION_IMAGE_SIZE",
    "Baseline",
    "EncoderWeightsError",
    "FERAtt",
    "ModelOutput",
    "PreActResNet18",
    "ResNet",
    "VARIANTS",
    "Variant",
    "build_model",
    "build_resnet",
    "get_variant",
    "init_parameters",
    "load_encoder_state_dict",
    "load_encoder_weights",
]
