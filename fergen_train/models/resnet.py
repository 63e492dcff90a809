"""ResNet encoders whose state_dict keys match torchvision's ``resnet18``/``resnet34``.

torchvision is not a dependency, but its ImageNet weight files are the usual
starting point for the FERAtt attention encoder. Keeping the module names
(``conv1``, ``bn1``, ``layer1.0.conv1``, ..., ``fc``) lets such a file load with
``load_state_dict(strict=True)`` after it is read with ``torch.load``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

logger = logging.getLogger(__name__)

#: Blocks per stage for the BasicBlock ResNets that torchvision names this way.
RESNET_LAYERS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}

#: ImageNet channel statistics (RGB, for inputs in [0, 1]) that torchvision's
#: ImageNet weights expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size=3,
        stride=stride,
        padding=dilation,
        dilation=dilation,
        bias=False,
    )


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity or 1x1 shortcut.

    Unlike torchvision's BasicBlock, this one accepts ``dilation > 1`` so the
    encoder can trade stride for dilation.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_channels, channels, stride, dilation)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(channels, channels, 1, dilation)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """BasicBlock ResNet with torchvision's module names.

    Args:
        layers: Blocks in each of the four stages, ``(3, 4, 6, 3)`` for ResNet34.
        width: Channels of the stem and the first stage. The stages have
            ``width * (1, 2, 4, 8)`` channels; torchvision's weights need 64.
        dilate: For stages 2, 3 and 4, whether to replace the stride-2
            convolution by dilation, as torchvision's ``replace_stride_with_dilation``.
        num_classes: Size of the ``fc`` classifier. ``None`` builds no
            ``avgpool``/``fc``, for use as an encoder only.
    """

    def __init__(
        self,
        layers: Sequence[int],
        width: int = 64,
        dilate: Sequence[bool] = (False, False, False),
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        if len(layers) != 4:
            raise ValueError(f"layers must list 4 stage depths, got {tuple(layers)!r}")
        if len(dilate) != 3:
            raise ValueError(f"dilate must have 3 flags (stages 2 to 4), got {tuple(dilate)!r}")
        self._in_channels = width
        self._dilation = 1

        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_stage(width, layers[0], stride=1, dilate=False)
        self.layer2 = self._make_stage(width * 2, layers[1], stride=2, dilate=dilate[0])
        self.layer3 = self._make_stage(width * 4, layers[2], stride=2, dilate=dilate[1])
        self.layer4 = self._make_stage(width * 8, layers[3], stride=2, dilate=dilate[2])

        #: Channels of the five feature maps that :meth:`forward_features` returns.
        self.feature_channels = (width, width, width * 2, width * 4, width * 8)

        if num_classes is not None:
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(width * 8, num_classes)
        else:
            self.avgpool = None
            self.fc = None

    def _make_stage(self, channels: int, blocks: int, stride: int, dilate: bool) -> nn.Sequential:
        previous_dilation = self._dilation
        if dilate:
            self._dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self._in_channels != channels:
            downsample = nn.Sequential(
                nn.Conv2d(self._in_channels, channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(channels),
            )
        # As in torchvision, the first block of a dilated stage keeps the
        # previous dilation and the later blocks use the new one.
        stage = [BasicBlock(self._in_channels, channels, stride, previous_dilation, downsample)]
        self._in_channels = channels
        for _ in range(1, blocks):
            stage.append(BasicBlock(channels, channels, dilation=self._dilation))
        return nn.Sequential(*stage)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Compute the stem and stage outputs for skip connections.

        Args:
            x: Normalised images, (B, 3, H, W).

        Returns:
            Five maps: the stem after ReLU at stride 2, then stages 1 to 4 at
            strides 4, 8, 16 and 32 (smaller strides where a stage is dilated).
            Channels are :attr:`feature_channels`.
        """
        stem = self.relu(self.bn1(self.conv1(x)))
        c1 = self.layer1(self.maxpool(stem))
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return [stem, c1, c2, c3, c4]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classify ``x`` (B, 3, H, W) into logits (B, num_classes)."""
        if self.fc is None:
            raise RuntimeError(
                "this ResNet was built with num_classes=None and has no classifier; "
                "call forward_features() instead"
            )
        features = self.forward_features(x)[-1]
        return self.fc(torch.flatten(self.avgpool(features), 1))


def build_resnet(
    name: str,
    width: int = 64,
    dilate: Sequence[bool] = (False, False, False),
    num_classes: int | None = None,
) -> ResNet:
    """Build ``resnet18`` or ``resnet34`` by name (see :class:`ResNet`)."""
    if name not in RESNET_LAYERS:
        raise ValueError(f"unknown encoder {name!r}; expected one of {sorted(RESNET_LAYERS)}")
    return ResNet(RESNET_LAYERS[name], width=width, dilate=dilate, num_classes=num_classes)


class EncoderWeightsError(ValueError):
    """A weight file does not match the encoder it is loaded into."""


def load_encoder_state_dict(encoder: ResNet, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Copy a torchvision-style state_dict into ``encoder``.

    The ``fc.*`` entries of an ImageNet classifier are dropped when the encoder
    has no ``fc``. Every other key must match exactly, so a file for another
    architecture fails here instead of loading partially.

    Raises:
        EncoderWeightsError: if keys are missing or unexpected, or shapes differ.
            The message names ``source`` and the first differing keys.
    """
    entries = dict(state_dict)
    if encoder.fc is None:
        entries = {key: value for key, value in entries.items() if not key.startswith("fc.")}

    expected = encoder.state_dict()
    # Files saved before torch 0.4.1 (torchvision's first ImageNet weights)
    # have no num_batches_tracked; BatchNorm2d fills it in on load.
    missing = sorted(
        key for key in set(expected) - set(entries) if not key.endswith(".num_batches_tracked")
    )
    unexpected = sorted(set(entries) - set(expected))
    if missing or unexpected:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing keys such as {', '.join(missing[:3])}")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected keys such as {', '.join(unexpected[:3])}")
        raise EncoderWeightsError(
            f"{source}: the state_dict does not match the encoder ({'; '.join(problems)}). "
            "Pass a torchvision resnet18/resnet34 state_dict that matches model.encoder "
            "with encoder_width 64."
        )
    for key, value in entries.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise EncoderWeightsError(
                f"{source}: {key} has shape {tuple(value.shape)}, the encoder expects "
                f"{tuple(expected[key].shape)}. Check that model.encoder names the "
                "architecture the file was trained with."
            )
    encoder.load_state_dict(entries, strict=True)


def load_encoder_weights(encoder: ResNet, path: str | Path) -> None:
    """Load a local torchvision weight file into ``encoder``.

    The file is read with ``torch.load(weights_only=True)``. It may be a bare
    state_dict or a dict with the state_dict under ``"state_dict"`` or ``"model"``.
    Nothing is downloaded.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        EncoderWeightsError: if the file contains no matching state_dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"encoder weight file {str(path)!r} not found; pass the path of a local "
            "torchvision resnet state_dict (for example resnet34-b627a593.pth)"
        )
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(loaded, Mapping):
        for wrapper_key in ("state_dict", "model"):
            if isinstance(loaded.get(wrapper_key), Mapping):
                loaded = loaded[wrapper_key]
                break
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise EncoderWeightsError(
            f"{path}: expected a state_dict (a mapping of names to tensors), "
            f"got {type(loaded).__name__}"
        )
    load_encoder_state_dict(encoder, loaded, source=str(path))
    logger.info("loaded encoder weights from %s (%d tensors)", path, len(encoder.state_dict()))
