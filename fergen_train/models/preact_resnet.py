"""PreActResNet18 for 32x32 inputs, ending in a representation and class logits.

The network follows He et al., "Identity Mappings in Deep Residual Networks"
(arXiv 1603.05027): batch norm and ReLU come before each convolution, and the
stem is a single 3x3 convolution with no pooling, as is usual for 32x32 images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PreActBlock(nn.Module):
    """Pre-activation basic block: BN, ReLU, conv, BN, ReLU, conv, plus shortcut."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        # The projection shortcut takes the pre-activated input, as in He et al.'s network.
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    """PreActResNet18 with a linear representation layer and a linear classifier.

    Args:
        num_classes: Number of output logits.
        representation_dim: Size of the representation vector before the classifier.
        width: Channels of the stem and first stage; the stages have
            ``width * (1, 2, 4, 8)`` channels. 64 is the standard network.

    Shapes:
        input: (B, 3, H, W) with H, W >= 8; 32x32 in FERAtt.
        output: ``(representation (B, representation_dim), logits (B, num_classes))``.
    """

    def __init__(self, num_classes: int, representation_dim: int = 64, width: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False)
        stages = []
        in_channels = width
        for channels, stride in [(width, 1), (width * 2, 2), (width * 4, 2), (width * 8, 2)]:
            stages.append(
                nn.Sequential(PreActBlock(in_channels, channels, stride), PreActBlock(channels, channels))
            )
            in_channels = channels
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn = nn.BatchNorm2d(in_channels)
        self.representation = nn.Linear(in_channels, representation_dim)
        self.classifier = nn.Linear(representation_dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.relu(self.bn(out))
        pooled = torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)
        representation = self.representation(pooled)
        return representation, self.classifier(representation)
