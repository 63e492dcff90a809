"""Loss values on hand-made tensors, compared with values worked out by hand."""

import math

import pytest
import torch

from fergen_train.config import LossConfig
from fergen_train.losses import (
    FERAttLoss,
    GaussianManifoldLoss,
    attention_loss,
    classification_loss,
    gaussian_posteriors,
)
from fergen_train.models import ModelOutput


def test_attention_loss_area_resizes_target():
    attention_image = torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)
    target = torch.tensor(
        [
            [[0.0, 1.0], [0.0, 1.0]],  # mean 0.5
            [[0.2, 0.2], [0.2, 0.2]],  # mean 0.2
            [[0.3, 0.3], [0.9, 0.9]],  # mean 0.6
        ]
    ).unsqueeze(0)

    loss = attention_loss(attention_image, target)

    # ((0.1 - 0.5)^2 + 0 + (0.3 - 0.6)^2) / 3 = 0.25 / 3
    assert float(loss) == pytest.approx(0.25 / 3, abs=1e-7)


def test_attention_loss_same_size():
    attention_image = torch.full((2, 3, 4, 4), 0.5)
    target = torch.zeros(2, 3, 4, 4)

    assert float(attention_loss(attention_image, target)) == pytest.approx(0.25)


def test_attention_loss_batch_mismatch():
    with pytest.raises(ValueError, match="differ in batch size or channels"):
        attention_loss(torch.zeros(2, 3, 4, 4), torch.zeros(3, 3, 8, 8))


def test_cross_entropy_values():
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])
    labels = torch.tensor([1, 0])

    loss = classification_loss(logits, labels, "ce")

    # softmax gives (1/4, 3/4); the loss is the mean of -ln(3/4) and -ln(1/4).
    assert float(loss) == pytest.approx((-math.log(0.75) - math.log(0.25)) / 2, abs=1e-6)


def test_binary_cross_entropy_values():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), -math.log(3.0)]])
    labels = torch.tensor([0, 0])

    loss = classification_loss(logits, labels, "bce")

    # Row 1: two entries of ln 2. Row 2: sigmoid(ln 3) = 3/4 against 1 and
    # sigmoid(-ln 3) = 1/4 against 0, each -ln(3/4). Mean over the 4 entries.
    expected = (2 * math.log(2.0) + 2 * -math.log(0.75)) / 4
    assert float(loss) == pytest.approx(expected, abs=1e-6)


def test_unknown_classification_loss():
    with pytest.raises(ValueError, match="unknown classification loss 'hinge'"):
        classification_loss(torch.zeros(1, 2), torch.tensor([0]), "hinge")


def two_points():
    representation = torch.tensor([[0.0], [2.0]])
    labels = torch.tensor([0, 1])
    return representation, labels


def test_posteriors_two_classes():
    representation, _ = two_points()
    means = torch.tensor([[0.0], [2.0]])

    posteriors = gaussian_posteriors(representation, means, 1.0, torch.log(torch.tensor([0.5, 0.5])))

    # Squared distances 0 and 4 give scores 0 and -2, so p = 1 / (1 + e^-2).
    near = 1.0 / (1.0 + math.exp(-2.0))
    expected = torch.tensor([[near, 1 - near], [1 - near, near]])
    torch.testing.assert_close(posteriors, expected)


def test_manifold_loss_uniform_priors():
    representation, labels = two_points()
    loss_fn = GaussianManifoldLoss(num_classes=2, representation_dim=1, sigma=1.0)

    loss = loss_fn(representation, labels)

    # Each sample misses its class by e = 1 / (1 + e^2), on both classes: 2 e^2.
    miss = 1.0 / (1.0 + math.exp(2.0))
    assert float(loss) == pytest.approx(2 * miss**2, rel=1e-6)


def test_manifold_loss_sigma_two():
    representation, labels = two_points()
    loss_fn = GaussianManifoldLoss(num_classes=2, representation_dim=1, sigma=2.0)

    loss = loss_fn(representation, labels)

    # Scores are -4 / (2 * 2^2) = -0.5 away from the right class.
    miss = 1.0 / (1.0 + math.exp(0.5))
    assert float(loss) == pytest.approx(2 * miss**2, rel=1e-6)


def test_manifold_loss_priors():
    representation, labels = two_points()
    loss_fn = GaussianManifoldLoss(num_classes=2, representation_dim=1, sigma=1.0, priors=[3.0, 1.0])

    loss = loss_fn(representation, labels)

    # Priors 3/4 and 1/4. Sample 0: p(1) = 1 / (1 + 3 e^2). Sample 1: p(0) = 3 / (3 + e^2).
    miss_first = 1.0 / (1.0 + 3.0 * math.exp(2.0))
    miss_second = 3.0 / (3.0 + math.exp(2.0))
    expected = (2 * miss_first**2 + 2 * miss_second**2) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_batch_means_skip_missing_class():
    representation, labels = two_points()
    three_classes = GaussianManifoldLoss(num_classes=3, representation_dim=1)
    two_classes = GaussianManifoldLoss(num_classes=2, representation_dim=1)

    loss = three_classes(representation, labels)

    assert float(loss) == pytest.approx(float(two_classes(representation, labels)), rel=1e-6)


def test_batch_means_single_class_batch():
    loss_fn = GaussianManifoldLoss(num_classes=3, representation_dim=1)

    loss = loss_fn(torch.tensor([[1.0], [5.0]]), torch.tensor([0, 0]))

    assert float(loss) == 0.0


def test_running_means_fill_missing_class():
    loss_fn = GaussianManifoldLoss(num_classes=3, representation_dim=1, class_means="running", momentum=0.1)
    representation, labels = two_points()
    loss_fn(representation, labels)

    loss = loss_fn(torch.tensor([[1.0], [1.0]]), torch.tensor([0, 0]))

    # Class 0 uses the batch mean 1, class 1 its running mean 2 (squared
    # distance 1, score -0.5), and class 2 was never seen.
    miss = 1.0 / (1.0 + math.exp(0.5))
    assert float(loss) == pytest.approx(2 * miss**2, rel=1e-6)
    torch.testing.assert_close(loss_fn.running_means, torch.tensor([[0.1], [2.0], [0.0]]))
    assert loss_fn.running_seen.tolist() == [True, True, False]


def test_running_means_frozen_in_eval():
    loss_fn = GaussianManifoldLoss(num_classes=2, representation_dim=1, class_means="running")
    loss_fn.eval()

    loss_fn(*two_points())

    assert loss_fn.running_seen.tolist() == [False, False]
    assert torch.equal(loss_fn.running_means, torch.zeros(2, 1))


def test_running_means_in_state_dict():
    loss_fn = GaussianManifoldLoss(num_classes=2, representation_dim=1, class_means="running")
    loss_fn(*two_points())

    state = loss_fn.state_dict()

    assert sorted(state) == ["running_means", "running_seen"]
    torch.testing.assert_close(state["running_means"], torch.tensor([[0.0], [2.0]]))


def test_gradient_through_batch_means():
    representation = torch.tensor([[0.0], [0.5], [2.0]], requires_grad=True)
    loss_fn = GaussianManifoldLoss(num_classes=2, representation_dim=1, class_means="running")

    labels = torch.tensor([0, 0, 1])
    loss = loss_fn(representation, labels)
    loss.backward()

    assert not loss_fn.running_means.requires_grad
    # The lone class-1 point carries its own mean, so moving it away from class 0 helps.
    assert float(representation.grad[2]) < 0
    with torch.no_grad():
        stepped = representation - 0.5 * representation.grad
        assert float(loss_fn(stepped, labels)) < float(loss)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(sigma=0.0), "sigma must be > 0"),
        (dict(class_means="ema"), "class_means must be 'batch' or 'running'"),
        (dict(momentum=1.5), r"momentum must be in \(0, 1\]"),
        (dict(priors=[1.0]), "priors must be 2 positive numbers"),
        (dict(priors=[1.0, 0.0]), "priors must be 2 positive numbers"),
    ],
)
def test_manifold_loss_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GaussianManifoldLoss(num_classes=2, representation_dim=1, **kwargs)


def make_output():
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])
    representation, _ = two_points()
    attention_image = torch.full((2, 3, 1, 1), 0.5)
    return ModelOutput(logits, representation, attention_image, None)


def make_batch():
    return {"label": torch.tensor([1, 0]), "target": torch.zeros(2, 3, 2, 2)}


def test_weighted_total_feratt_rep_cls():
    config = LossConfig(attention_weight=10.0, classification_weight=2.0, representation_weight=0.5)
    criterion = FERAttLoss(config, "feratt-rep-cls", num_classes=2, representation_dim=1)

    result = criterion(make_output(), make_batch())

    classification = (-math.log(0.75) - math.log(0.25)) / 2
    attention = 0.25
    # Batch means follow the labels: each sample is its class's mean, 2 away from the other.
    miss = 1.0 / (1.0 + math.exp(2.0))
    representation = 2 * miss**2
    assert sorted(result.terms) == ["attention", "classification", "representation"]
    assert float(result.terms["classification"]) == pytest.approx(classification, rel=1e-6)
    assert float(result.terms["attention"]) == pytest.approx(attention)
    assert float(result.terms["representation"]) == pytest.approx(representation, rel=1e-6)
    expected = 2.0 * classification + 10.0 * attention + 0.5 * representation
    assert float(result.total) == pytest.approx(expected, rel=1e-6)


def test_terms_of_feratt_cls():
    criterion = FERAttLoss(LossConfig(), "feratt-cls", num_classes=2, representation_dim=1)

    result = criterion(make_output(), make_batch())

    assert sorted(result.terms) == ["attention", "classification"]


def test_terms_of_baseline():
    criterion = FERAttLoss(LossConfig(), "baseline", num_classes=2, representation_dim=1)
    output = make_output()._replace(attention_image=None)

    result = criterion(output, {"label": torch.tensor([1, 0])})

    assert sorted(result.terms) == ["classification"]
    assert float(result.total) == pytest.approx(float(result.terms["classification"]))


def test_float32_under_bf16_autocast():
    criterion = FERAttLoss(LossConfig(), "feratt-rep-cls", num_classes=2, representation_dim=1)
    output = make_output()
    output = output._replace(representation=output.representation.bfloat16(), logits=output.logits.bfloat16())

    result = criterion(output, make_batch())

    assert result.total.dtype == torch.float32
