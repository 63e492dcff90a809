"""BatchRenderer against the numpy renderer on the same params (CPU), and its noise and input checks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fergen.pipeline import Renderer
from fergen.render import render
from fergen.torch import BatchRenderer, ParamBatch, gather_inputs, ops

MIN_PSNR = 35.0


def psnr(actual: np.ndarray, expected: np.ndarray) -> float:
    error = np.mean((actual.astype(np.float64) - expected.astype(np.float64)) ** 2)
    return float("inf") if error == 0 else 10.0 * np.log10(255.0 ** 2 / error)


def to_uint8(batch: torch.Tensor) -> np.ndarray:
    """Convert float (B, C, H, W) in [0, 1] to uint8 (B, H, W, C), rounding as fergen.render.to_uint8 does."""
    return np.floor(batch.numpy().transpose(0, 2, 3, 1) * 255.0 + 0.5).clip(0, 255).astype(np.uint8)


def assert_parity(output: dict, samples: list) -> None:
    composites = to_uint8(output["composite"])
    targets = to_uint8(output["target"])
    masks = to_uint8(output["mask"])[..., 0]
    for row, sample in enumerate(samples):
        assert psnr(composites[row], sample.composite) >= MIN_PSNR, f"composite of row {row}"
        assert psnr(targets[row], sample.target) >= MIN_PSNR, f"target of row {row}"
        assert psnr(masks[row], sample.mask) >= MIN_PSNR, f"mask of row {row}"


def grayscale_renderer(renderer: Renderer) -> Renderer:
    recipe = renderer.recipe.replace(render=dataclasses.replace(renderer.recipe.render, grayscale=True))
    return Renderer(recipe, faces=renderer.faces)


@pytest.mark.parametrize("recipe", ["demo", "small", "small-grey"])
def test_psnr_parity_with_numpy_noise(recipe, demo_renderer, small_renderer):
    renderer = {"demo": demo_renderer, "small": small_renderer,
                "small-grey": grayscale_renderer(small_renderer)}[recipe]
    indices = list(range(24))
    samples = [renderer.sample(index) for index in indices]
    params = [renderer.plan(index)[2] for index in indices]

    output = BatchRenderer(noise="bank").render_samples(renderer, indices)

    # The batch must exercise every step: flips, tilts, blur, noise and luminance matching.
    assert any(item.flip for item in params)
    assert all(item.perspective != (0.0, 0.0) for item in params)
    assert any(item.blur_sigma > 0 for item in params)
    assert any(item.noise_sigma > 2 for item in params)
    assert any(abs(sample.metadata["luminance_ratio"] - 1.0) > 0.05 for sample in samples)
    assert_parity(output, samples)
    assert torch.equal(output["theta"], torch.from_numpy(np.stack([sample.theta for sample in samples])))
    assert output["label"].tolist() == [sample.label for sample in samples]
    ratios = np.array([meta["luminance_ratio"] for meta in output["meta"]])
    expected_ratios = np.array([sample.metadata["luminance_ratio"] for sample in samples])
    np.testing.assert_allclose(ratios, expected_ratios, rtol=0.01)


def test_psnr_parity_without_noise(demo_renderer):
    indices = list(range(100, 116))
    inputs = gather_inputs(demo_renderer, indices)
    quiet = [dataclasses.replace(params, noise_sigma=0.0) for params in inputs.params]
    samples = []
    for row, params in enumerate(quiet):
        face = demo_renderer.faces.rgba[inputs.face_ids[row]]
        photo = demo_renderer.backgrounds.load(inputs.background_ids[row])
        sample, _ = render(face, float(inputs.face_lightness[row]), photo, params)
        samples.append(sample)

    output = BatchRenderer(noise="none").render(inputs.faces, inputs.masks, inputs.backgrounds, inputs.params,
                                                face_lightness=inputs.face_lightness)

    assert_parity(output, samples)


def test_face_lightness_is_computed_when_omitted(small_renderer):
    inputs = gather_inputs(small_renderer, range(8))
    renderer = BatchRenderer(noise="none")

    given_lightness = renderer.render(inputs.faces, inputs.masks, inputs.backgrounds, inputs.params,
                                      face_lightness=inputs.face_lightness)
    computed = renderer.render(inputs.faces, inputs.masks, inputs.backgrounds, inputs.params)

    np.testing.assert_allclose(computed["luminance_ratio"].numpy(), given_lightness["luminance_ratio"].numpy(),
                               rtol=5e-3)
    assert psnr(to_uint8(computed["composite"]), to_uint8(given_lightness["composite"])) > 45.0


def test_generator_noise_is_seeded(small_renderer):
    inputs = gather_inputs(small_renderer, range(8))
    arguments = (inputs.faces, inputs.masks, inputs.backgrounds, inputs.params)

    first = BatchRenderer(seed=1).render(*arguments)["composite"]
    again = BatchRenderer(seed=1).render(*arguments)["composite"]
    other = BatchRenderer(seed=2).render(*arguments)["composite"]
    passed = BatchRenderer(seed=2).render(*arguments, generator=torch.Generator().manual_seed(1))["composite"]

    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert torch.equal(first, passed)


def test_generator_noise_has_the_requested_sigma(small_renderer):
    params = [dataclasses.replace(small_renderer.plan(index)[2], noise_sigma=6.0, grayscale=False)
              for index in range(16)]
    inputs = gather_inputs(small_renderer, range(16))
    renderer = BatchRenderer(seed=3)

    noisy = renderer.render(inputs.faces, inputs.masks, inputs.backgrounds, params)["composite"]
    clean = renderer.render(inputs.faces, inputs.masks, inputs.backgrounds, params, noise="none")["composite"]

    difference = (noisy - clean)[(clean > 0.1) & (clean < 0.9)] * 255.0
    assert difference.numel() > 10000
    assert abs(float(difference.mean())) < 0.2
    assert abs(float(difference.std()) - 6.0) < 0.2


def test_render_samples_batch_contract(small_renderer):
    output = BatchRenderer().render_samples(small_renderer, [3, 1, 4], epoch=2)

    assert output["composite"].shape == (3, 3, 48, 64)
    assert output["target"].shape == (3, 3, 48, 64)
    assert output["mask"].shape == (3, 1, 48, 64)
    assert output["label"].dtype == torch.int64
    assert output["theta"].shape == (3, 2, 3)
    for key in ("composite", "target", "mask", "theta"):
        assert output[key].dtype == torch.float32
    expected = small_renderer.sample(1, epoch=2).metadata
    assert set(output["meta"][1]) == set(expected) | {"key"}
    assert output["meta"][1]["params"] == expected["params"]
    assert output["meta"][1]["face_box"] == expected["face_box"]
    assert output["meta"][1]["visible_fraction"] == pytest.approx(expected["visible_fraction"], abs=2e-3)
    short = BatchRenderer().render_samples(small_renderer, [3], with_meta=False)["meta"]
    assert short == [{"index": 3, "epoch": 0, "key": "000000003"}]


def test_input_shapes_are_checked(small_renderer):
    inputs = gather_inputs(small_renderer, range(4))
    renderer = BatchRenderer()

    with pytest.raises(ValueError, match=r"backgrounds: expected shape \(4, 3, 48, 64\)"):
        renderer.render(inputs.faces, inputs.masks, inputs.backgrounds[:, :, :40], inputs.params)
    with pytest.raises(ValueError, match=r"faces: expected shape \(4, 3, 48, 48\)"):
        renderer.render(inputs.faces[:3], inputs.masks, inputs.backgrounds, inputs.params)
    with pytest.raises(TypeError, match="uint8 or a float dtype"):
        renderer.render(inputs.faces.to(torch.int32), inputs.masks, inputs.backgrounds, inputs.params)
    with pytest.raises(ValueError, match="one output and face size"):
        bigger = dataclasses.replace(inputs.params[1], output_size=(64, 64))
        ParamBatch.from_params([inputs.params[0], bigger])
    with pytest.raises(ValueError, match="noise must be one of"):
        BatchRenderer(noise="gaussian")
    with pytest.raises(TypeError, match="Renderer or RenderDataset"):
        renderer.render_samples(object(), [0])


def test_masks_without_channel_axis_are_accepted(small_renderer):
    inputs = gather_inputs(small_renderer, range(2))
    renderer = BatchRenderer(noise="none")

    with_axis = renderer.render(inputs.faces, inputs.masks, inputs.backgrounds, inputs.params)
    without_axis = renderer.render(inputs.faces, inputs.masks[:, 0], inputs.backgrounds, inputs.params)

    assert torch.equal(with_axis["composite"], without_axis["composite"])


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), epoch=st.integers(0, 1000))
def test_outputs_stay_in_unit_range(small_renderer, seed, epoch):
    indices = [seed % 1000, seed % 997 + 1000]

    output = BatchRenderer(seed=seed).render_samples(small_renderer, indices, epoch=epoch, with_meta=False)

    for key in ("composite", "target", "mask"):
        assert float(output[key].min()) >= 0.0, key
        assert float(output[key].max()) <= 1.0, key
        assert bool(torch.isfinite(output[key]).all()), key


def test_feather_option_feathers_hard_masks(small_renderer):
    inputs = gather_inputs(small_renderer, range(3))
    hard = (inputs.masks >= 128).to(torch.uint8) * 255
    renderer = BatchRenderer(noise="none")

    feathered_inside = renderer.render(inputs.faces, hard, inputs.backgrounds, inputs.params, feather=1.5)
    feathered_before = renderer.render(inputs.faces, ops.feather_masks(hard.float() / 255.0, 1.5),
                                       inputs.backgrounds, inputs.params)
    hard_edges = renderer.render(inputs.faces, hard, inputs.backgrounds, inputs.params)

    assert torch.equal(feathered_inside["mask"], feathered_before["mask"])
    assert torch.equal(feathered_inside["composite"], feathered_before["composite"])
    assert not torch.equal(feathered_inside["mask"], hard_edges["mask"])


def test_lightness_shape_and_empty_indices_are_checked(small_renderer):
    inputs = gather_inputs(small_renderer, range(2))

    with pytest.raises(ValueError, match=r"face_lightness: expected shape \(2,\)"):
        BatchRenderer().render(inputs.faces, inputs.masks, inputs.backgrounds, inputs.params,
                               face_lightness=torch.ones(3))
    with pytest.raises(ValueError, match="indices is empty"):
        gather_inputs(small_renderer, [])


@pytest.mark.skipif(torch.backends.cuda.is_built(), reason="needs a torch build without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", torch.device("cuda:1")])
def test_cuda_device_without_cuda_build(device):
    with pytest.raises(ValueError) as raised:
        BatchRenderer(device=device)

    assert str(raised.value) == (
        f"device {str(device)!r}: CUDA is not available in this torch build (torch {torch.__version__}); "
        "use device='cpu' or install a CUDA build of torch"
    )


def test_invalid_device_string():
    with pytest.raises(ValueError, match=r"invalid device 'gpu0' \(.*\); use 'cpu', 'cuda' or 'cuda:N'"):
        BatchRenderer(device="gpu0")


def test_cpu_device_accepted():
    renderer = BatchRenderer(device="cpu")

    assert renderer.device == torch.device("cpu")
    assert renderer.generator.device == torch.device("cpu")
