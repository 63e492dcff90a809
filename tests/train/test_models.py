"""Shapes, initialisation and one optimisation step for every model variant."""

import pytest
import torch

from fergen_train.config import LossConfig, ModelConfig
from fergen_train.losses import FERAttLoss
from fergen_train.models import VARIANTS, FERAtt, ModelOutput, build_model, get_variant

# Narrow networks keep the CPU cost low; the full-size models are checked once below.
SMALL = dict(
    encoder="resnet18",
    encoder_width=8,
    decoder_width=4,
    feature_channels=8,
    feature_blocks=2,
    classifier_width=8,
    representation_dim=16,
)


def small_config(variant, **changes):
    return ModelConfig(variant=variant, **{**SMALL, **changes})


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("size", [(32, 32), (64, 64), (96, 80), (50, 70)])
def test_output_shapes(variant, size):
    model = build_model(small_config(variant), num_classes=5)
    images = torch.rand(3, 3, *size)

    with torch.no_grad():
        output = model(images)

    assert isinstance(output, ModelOutput)
    assert output.logits.shape == (3, 5)
    assert output.representation.shape == (3, 16)
    if get_variant(variant).attention:
        assert output.attention_image.shape == (3, 3, 32, 32)
        assert output.attention_map.shape == (3, 1, *size)
        assert float(output.attention_map.min()) >= 0.0
        assert float(output.attention_map.max()) <= 1.0
    else:
        assert output.attention_image is None
        assert output.attention_map is None
    assert torch.isfinite(output.logits).all()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_full_size_shapes_at_128(variant):
    model = build_model(ModelConfig(variant=variant), num_classes=7, load_weights=False)
    model.eval()

    with torch.no_grad():
        output = model(torch.rand(2, 3, 128, 128))

    assert output.logits.shape == (2, 7)
    assert output.representation.shape == (2, 64)
    if get_variant(variant).attention:
        assert output.attention_image.shape == (2, 3, 32, 32)
        assert output.attention_map.shape == (2, 1, 128, 128)


def test_attention_map_per_feature_channel():
    model = build_model(small_config("feratt-cls", attention_channels=8), num_classes=3)

    output = model(torch.rand(2, 3, 48, 48))

    assert output.attention_map.shape == (2, 8, 48, 48)


def test_attention_channels_invalid():
    with pytest.raises(ValueError, match="attention_channels must be 1 or feature_channels"):
        build_model(small_config("feratt-cls", attention_channels=3), num_classes=3)


def test_dilated_encoder_output_stride():
    model = build_model(small_config("feratt-cls", dilation=True), num_classes=3)
    encoder = model.attention.encoder

    features = encoder.forward_features(torch.rand(1, 3, 64, 64))

    assert [tuple(f.shape[-2:]) for f in features] == [(32, 32), (16, 16), (8, 8), (8, 8), (8, 8)]
    assert model(torch.rand(1, 3, 64, 64)).attention_map.shape == (1, 1, 64, 64)


def test_undilated_encoder_output_stride():
    model = build_model(small_config("feratt-cls"), num_classes=3)

    features = model.attention.encoder.forward_features(torch.rand(1, 3, 64, 64))

    assert [tuple(f.shape[-2:]) for f in features] == [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]


@pytest.mark.parametrize(
    "images, message",
    [
        (torch.rand(2, 1, 64, 64), r"shape \(B, 3, H, W\)"),
        (torch.rand(3, 64, 64), r"shape \(B, 3, H, W\)"),
        (torch.zeros(2, 3, 64, 64, dtype=torch.uint8), "floating point"),
        (torch.rand(2, 3, 31, 64), "smaller than the 32x32"),
    ],
)
def test_invalid_images_rejected(images, message):
    model = build_model(small_config("feratt-cls"), num_classes=3)

    with pytest.raises(ValueError, match=message):
        model(images)


def test_unknown_variant_rejected():
    with pytest.raises(ValueError, match="unknown model variant 'feratt'; expected one of"):
        build_model(ModelConfig(variant="feratt"), num_classes=3)


def test_too_few_classes_rejected():
    with pytest.raises(ValueError, match="num_classes must be at least 2, got 1"):
        build_model(small_config("baseline"), num_classes=1)


def test_same_generator_same_weights():
    first = build_model(small_config("feratt-rep-cls"), 4, torch.Generator().manual_seed(3))
    second = build_model(small_config("feratt-rep-cls"), 4, torch.Generator().manual_seed(3))
    third = build_model(small_config("feratt-rep-cls"), 4, torch.Generator().manual_seed(4))

    for key, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[key]), key
    assert not torch.equal(first.classifier.conv1.weight, third.classifier.conv1.weight)


def test_build_leaves_global_rng_alone():
    state = torch.random.get_rng_state()

    build_model(small_config("feratt-rep-cls"), 4)

    assert torch.equal(torch.random.get_rng_state(), state)


def test_initial_batch_norm_statistics():
    model = build_model(small_config("feratt-cls"), 4)
    batch_norm = model.attention.encoder.bn1

    assert torch.equal(batch_norm.running_mean, torch.zeros(8))
    assert torch.equal(batch_norm.running_var, torch.ones(8))
    assert int(batch_norm.num_batches_tracked) == 0
    assert torch.equal(batch_norm.weight, torch.ones(8))


def test_missing_encoder_weights_warns(caplog):
    with caplog.at_level("WARNING", logger="fergen_train.models.registry"):
        build_model(small_config("feratt-cls"), 4)

    assert "model.encoder_weights is not set" in caplog.text
    assert "--encoder-weights PATH" in caplog.text


def test_baseline_has_no_encoder_warning(caplog):
    with caplog.at_level("WARNING", logger="fergen_train.models.registry"):
        build_model(small_config("baseline"), 4)

    assert caplog.text == ""


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_one_step_lowers_loss(variant):
    data = torch.Generator().manual_seed(0)
    config = small_config(variant)
    model = build_model(config, num_classes=3, generator=torch.Generator().manual_seed(0))
    criterion = FERAttLoss(LossConfig(), variant, num_classes=3, representation_dim=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = {
        "composite": torch.rand(6, 3, 64, 64, generator=data),
        "target": torch.rand(6, 3, 64, 64, generator=data),
        "label": torch.tensor([0, 1, 2, 0, 1, 2]),
    }

    before = criterion(model(batch["composite"]), batch).total
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = criterion(model(batch["composite"]), batch).total

    assert float(after) < float(before.detach())


def test_feratt_model_type():
    model = build_model(small_config("feratt-rep-cls"), 3)

    assert isinstance(model, FERAtt)
