"""FERAtt (Fernandez et al., arXiv 1902.03284) and its PreActResNet18 baseline.

FERAtt has four parts:

1. attention module: a U-Net style encoder-decoder on a ResNet encoder, giving
   an attention map at the input resolution;
2. feature module: residual blocks with no pooling or stride, giving features
   at the input resolution;
3. fusion and reconstruction: ``sigmoid(attention) * features``, then two
   convolutions with a ReLU between them and average pooling to 32x32, giving
   the attention image (a reconstruction of the face-only target);
4. representation and classification: PreActResNet18 on the attention image,
   a linear layer to the representation, then a linear classifier.

Both models take RGB images in [0, 1] and normalise them with the ImageNet
statistics themselves, so callers never normalise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fergen_train.models.output import ModelOutput
from fergen_train.models.preact_resnet import PreActResNet18
from fergen_train.models.resnet import IMAGENET_MEAN, IMAGENET_STD, ResNet

#: Side of the attention image and of the baseline's resized input, in pixels.
ATTENTION_IMAGE_SIZE = 32


def check_images(images: torch.Tensor) -> None:
    """Raise ValueError unless ``images`` is (B, 3, H, W) floating point with H, W >= 32."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(
            f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}; "
            "convert grayscale images to 3 channels first"
        )
    if not images.is_floating_point():
        raise ValueError(
            f"expected floating point images in [0, 1], got dtype {images.dtype}; "
            "divide uint8 images by 255"
        )
    height, width = images.shape[-2:]
    if height < ATTENTION_IMAGE_SIZE or width < ATTENTION_IMAGE_SIZE:
        raise ValueError(
            f"images of {height}x{width} pixels are smaller than the "
            f"{ATTENTION_IMAGE_SIZE}x{ATTENTION_IMAGE_SIZE} attention image; "
            "use an input size of at least 32"
        )


def normalize_imagenet(images: torch.Tensor) -> torch.Tensor:
    """Normalise RGB images in [0, 1] with the ImageNet mean and std, (B, 3, H, W)."""
    mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images - mean) / std


class ConvBNReLU(nn.Sequential):
    """3x3 convolution, batch norm and ReLU, keeping the spatial size."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class DecoderBlock(nn.Sequential):
    """Two :class:`ConvBNReLU` layers applied after concatenating a skip connection."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(ConvBNReLU(in_channels, out_channels), ConvBNReLU(out_channels, out_channels))


class AttentionUNet(nn.Module):
    """Encoder-decoder with skip connections that outputs attention logits.

    The decoder upsamples bilinearly to the size of each skip connection, so
    any input of at least 32x32 works, including sizes that are not multiples
    of 32 and non-square images.

    Args:
        encoder: ResNet from :func:`fergen_train.models.resnet.build_resnet`.
        decoder_width: Base channel count ``d`` of the decoder; its blocks have
            ``8d, 8d, 4d, 2d, 2d`` channels and the head ``d``.
        out_channels: Channels of the attention map. 1 broadcasts one map over
            all feature channels.
    """

    def __init__(self, encoder: ResNet, decoder_width: int = 32, out_channels: int = 1) -> None:
        super().__init__()
        self.encoder = encoder
        stem, c1, c2, c3, c4 = encoder.feature_channels
        d = decoder_width
        self.center = DecoderBlock(c4, 8 * d)
        self.decoder = nn.ModuleList(
            [
                DecoderBlock(8 * d + c3, 8 * d),
                DecoderBlock(8 * d + c2, 4 * d),
                DecoderBlock(4 * d + c1, 2 * d),
                DecoderBlock(2 * d + stem, 2 * d),
            ]
        )
        self.head = nn.Sequential(ConvBNReLU(2 * d, d), nn.Conv2d(d, out_channels, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map normalised images (B, 3, H, W) to attention logits (B, out_channels, H, W)."""
        stem, c1, c2, c3, c4 = self.encoder.forward_features(x)
        y = self.center(c4)
        for block, skip in zip(self.decoder, (c3, c2, c1, stem)):
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], dim=1))
        y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(y)


class ResidualBlock(nn.Module):
    """3x3 conv, ReLU and 3x3 conv plus the identity, with stride 1 and no normalisation."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class FeatureModule(nn.Module):
    """A 3x3 stem convolution and ``blocks`` residual blocks at full resolution.

    Shapes:
        input: (B, 3, H, W). output: (B, channels, H, W).
    """

    def __init__(self, channels: int = 32, blocks: int = 4) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.blocks = nn.Sequential(*[ResidualBlock(channels) for _ in range(blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))


class Reconstruction(nn.Module):
    """Two 3x3 convolutions with a ReLU between them, then average pooling to 32x32.

    Shapes:
        input: (B, channels, H, W) with H, W >= 32. output: (B, 3, 32, 32).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(F.relu(self.conv1(x)))
        # Adaptive pooling is a plain k x k average when H and W are multiples of 32.
        return F.adaptive_avg_pool2d(x, ATTENTION_IMAGE_SIZE)


class FERAtt(nn.Module):
    """FERAtt: attention, features, fusion, reconstruction, representation, classes.

    Args:
        encoder: ResNet encoder of the attention module (torchvision key names).
        num_classes: Number of expression classes.
        decoder_width: Base channels of the attention decoder.
        feature_channels: Channels of the feature module and of the fused map.
        feature_blocks: Residual blocks in the feature module.
        attention_channels: Channels of the attention map, 1 or ``feature_channels``.
        representation_dim: Size of the representation.
        classifier_width: Base channels of the PreActResNet18 (64 is standard).

    Shapes:
        input: RGB images in [0, 1], (B, 3, H, W) with H, W >= 32.
        output: :class:`ModelOutput` with logits (B, num_classes), representation
        (B, representation_dim), attention_image (B, 3, 32, 32) and
        attention_map (B, attention_channels, H, W).
    """

    def __init__(
        self,
        encoder: ResNet,
        num_classes: int,
        decoder_width: int = 32,
        feature_channels: int = 32,
        feature_blocks: int = 4,
        attention_channels: int = 1,
        representation_dim: int = 64,
        classifier_width: int = 64,
    ) -> None:
        super().__init__()
        if attention_channels not in (1, feature_channels):
            raise ValueError(
                f"attention_channels must be 1 or feature_channels ({feature_channels}), "
                f"got {attention_channels}"
            )
        self.attention = AttentionUNet(encoder, decoder_width, attention_channels)
        self.features = FeatureModule(feature_channels, feature_blocks)
        self.reconstruction = Reconstruction(feature_channels)
        self.classifier = PreActResNet18(num_classes, representation_dim, classifier_width)

    def forward(self, images: torch.Tensor) -> ModelOutput:
        check_images(images)
        x = normalize_imagenet(images)
        attention_map = torch.sigmoid(self.attention(x))
        fused = attention_map * self.features(x)
        attention_image = self.reconstruction(fused)
        representation, logits = self.classifier(attention_image)
        return ModelOutput(logits, representation, attention_image, attention_map)


class Baseline(nn.Module):
    """PreActResNet18 on the input image area-resized to 32x32.

    Shapes:
        input: RGB images in [0, 1], (B, 3, H, W) with H, W >= 32.
        output: :class:`ModelOutput` with logits and representation. The
        attention fields are ``None``.
    """

    def __init__(self, num_classes: int, representation_dim: int = 64, classifier_width: int = 64) -> None:
        super().__init__()
        self.classifier = PreActResNet18(num_classes, representation_dim, classifier_width)

    def forward(self, images: torch.Tensor) -> ModelOutput:
        check_images(images)
        x = F.adaptive_avg_pool2d(normalize_imagenet(images), ATTENTION_IMAGE_SIZE)
        representation, logits = self.classifier(x)
        return ModelOutput(logits, representation)

