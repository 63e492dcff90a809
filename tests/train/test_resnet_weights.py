"""torchvision ResNet state_dicts load into the encoder with strict key matching."""

import pytest
import torch

from fergen_train.config import ModelConfig
from fergen_train.models import EncoderWeightsError, build_model, build_resnet, load_encoder_weights


def torchvision_resnet_state_dict(blocks, num_classes=1000, seed=0):
    """Build a state_dict with torchvision's key names and shapes, written out from the architecture.

    This mirrors torchvision.models.resnet.ResNet with BasicBlock (torchvision
    is not installed): a 7x7 stem, four stages of ``blocks`` with 64, 128, 256
    and 512 channels, a 1x1 downsample on the first block of stages 2 to 4, and
    ``fc``. Values are random so that a load can be checked element-wise.
    """
    generator = torch.Generator().manual_seed(seed)
    entries = {}

    def add(name, *shape):
        entries[name] = torch.randn(*shape, generator=generator)

    def add_bn(prefix, channels):
        add(f"{prefix}.weight", channels)
        add(f"{prefix}.bias", channels)
        add(f"{prefix}.running_mean", channels)
        entries[f"{prefix}.running_var"] = torch.rand(channels, generator=generator) + 0.5
        entries[f"{prefix}.num_batches_tracked"] = torch.tensor(7)

    add("conv1.weight", 64, 3, 7, 7)
    add_bn("bn1", 64)
    in_channels = 64
    for stage, (count, channels) in enumerate(zip(blocks, (64, 128, 256, 512)), start=1):
        for block in range(count):
            prefix = f"layer{stage}.{block}"
            add(f"{prefix}.conv1.weight", channels, in_channels, 3, 3)
            add_bn(f"{prefix}.bn1", channels)
            add(f"{prefix}.conv2.weight", channels, channels, 3, 3)
            add_bn(f"{prefix}.bn2", channels)
            if block == 0 and stage > 1:
                add(f"{prefix}.downsample.0.weight", channels, in_channels, 1, 1)
                add_bn(f"{prefix}.downsample.1", channels)
            in_channels = channels
    add("fc.weight", num_classes, 512)
    add("fc.bias", num_classes)
    return entries


RESNET34_BLOCKS = (3, 4, 6, 3)


def test_resnet34_key_count():
    # torchvision's resnet34().state_dict() has 218 entries.
    assert len(torchvision_resnet_state_dict(RESNET34_BLOCKS)) == 218


def test_resnet34_same_keys_and_shapes():
    reference = torchvision_resnet_state_dict(RESNET34_BLOCKS)
    model = build_resnet("resnet34", num_classes=1000)

    ours = model.state_dict()

    assert sorted(ours) == sorted(reference)
    for key, value in reference.items():
        assert tuple(ours[key].shape) == tuple(value.shape), key


def test_resnet34_strict_load():
    reference = torchvision_resnet_state_dict(RESNET34_BLOCKS)
    model = build_resnet("resnet34", num_classes=1000)

    model.load_state_dict(reference, strict=True)

    for key, value in model.state_dict().items():
        assert torch.equal(value, reference[key]), key


def test_feratt_encoder_loads_weight_file(tmp_path):
    reference = torchvision_resnet_state_dict(RESNET34_BLOCKS, seed=1)
    path = tmp_path / "resnet34.pth"
    torch.save(reference, path)
    config = ModelConfig(variant="feratt-rep-cls", encoder_weights=str(path))

    model = build_model(config, num_classes=7)

    encoder_state = model.attention.encoder.state_dict()
    assert not any(key.startswith("fc.") for key in encoder_state)
    for key, value in encoder_state.items():
        assert torch.equal(value, reference[key]), key


def test_old_file_without_num_batches_tracked(tmp_path):
    reference = {
        key: value
        for key, value in torchvision_resnet_state_dict(RESNET34_BLOCKS).items()
        if not key.endswith("num_batches_tracked")
    }
    path = tmp_path / "resnet34-old.pth"
    torch.save(reference, path)
    encoder = build_resnet("resnet34")

    load_encoder_weights(encoder, path)

    assert torch.equal(encoder.conv1.weight, reference["conv1.weight"])
    assert int(encoder.bn1.num_batches_tracked) == 0


def test_wrapped_state_dict_loads(tmp_path):
    reference = torchvision_resnet_state_dict((2, 2, 2, 2))
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": reference, "epoch": 3}, path)
    encoder = build_resnet("resnet18")

    load_encoder_weights(encoder, path)

    assert torch.equal(encoder.layer4[1].conv2.weight, reference["layer4.1.conv2.weight"])


def test_resnet18_file_into_resnet34_rejected(tmp_path):
    # resnet34 has 8 more blocks, each with 2 convolutions and 2 x 4 batch-norm tensors.
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision_resnet_state_dict((2, 2, 2, 2)), path)
    encoder = build_resnet("resnet34")

    with pytest.raises(EncoderWeightsError, match=r"resnet18.pth: the state_dict does not match the encoder \(80 missing keys such as layer1.2.bn1.bias"):
        load_encoder_weights(encoder, path)


def test_wrong_width_rejected(tmp_path):
    path = tmp_path / "resnet34.pth"
    torch.save(torchvision_resnet_state_dict(RESNET34_BLOCKS), path)
    encoder = build_resnet("resnet34", width=32)

    with pytest.raises(EncoderWeightsError, match=r"conv1.weight has shape \(64, 3, 7, 7\), the encoder expects \(32, 3, 7, 7\)"):
        load_encoder_weights(encoder, path)


def test_missing_file_rejected(tmp_path):
    with pytest.raises(FileNotFoundError, match="encoder weight file .*absent.pth' not found"):
        load_encoder_weights(build_resnet("resnet34"), tmp_path / "absent.pth")


def test_non_state_dict_rejected(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)

    with pytest.raises(EncoderWeightsError, match="expected a state_dict .* got list"):
        load_encoder_weights(build_resnet("resnet34"), path)
