"""Render a whole batch with torch on one device (CPU or CUDA), from the same params as the numpy renderer.

:class:`BatchRenderer` runs the per-sample render steps of
:func:`fergen.render.render` on stacked tensors:

3. geometry: the premultiplied face and its alpha warped with ``grid_sample``
   through each sample's homography (so the perspective tilt is exact);
4. background: given already cropped to the output size (see :func:`gather_inputs`);
5. luminance: the face's Lab L scaled by mean L(background) / mean L(face) under the alpha;
7. composite and target;
8. photometric: contrast, brightness, separable Gaussian blur, grayscale and noise.

:func:`gather_inputs` does the per-sample CPU work (drawing params, picking
the face, cropping and resizing the background photo with OpenCV), because
photos differ in size and cannot be stacked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional, Sequence, Union

import numpy as np
import torch

from ..params import RenderParams, affine_theta, face_to_output_matrix, normalized_homography
from ..pipeline import Renderer
from ..render import crop_background, face_box, gaussian_noise, noise_bank
from ..shards import sample_key
from . import ops

NoiseSource = Literal["generator", "bank", "none"]
_NOISE_SOURCES = ("generator", "bank", "none")
# Same guard against division by zero as fergen.render.
_EPSILON = 1e-6


@dataclass(frozen=True)
class ParamBatch:
    """The :class:`~fergen.params.RenderParams` of a batch, stacked into tensors on one device.

    Attributes:
        output_size: (H, W) shared by the batch.
        face_size: face canvas side S shared by the batch.
        homography: float32 (B, 3, 3), output to face canvas, both normalised to [-1, 1].
        theta: float32 (B, 2, 3), the ``affine_grid`` matrix of each sample (its affine part).
        luminance_match: bool (B,).
        luminance_clip: float32 (B, 2), allowed ratio range.
        brightness, contrast, noise_sigma: float32 (B,); noise_sigma in grey levels (0-255).
        grayscale: bool (B,).
        blur_sigma: per-sample blur sigma in pixels (0: no blur), kept on the host to size kernels.
        noise_seed: per-sample noise seed, kept on the host (values up to 2**63 - 1).
    """

    output_size: tuple[int, int]
    face_size: int
    homography: torch.Tensor
    theta: torch.Tensor
    luminance_match: torch.Tensor
    luminance_clip: torch.Tensor
    brightness: torch.Tensor
    contrast: torch.Tensor
    noise_sigma: torch.Tensor
    grayscale: torch.Tensor
    blur_sigma: tuple[float, ...]
    noise_seed: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.blur_sigma)

    @classmethod
    def from_params(cls, params: Sequence[RenderParams], device: Union[torch.device, str] = "cpu") -> "ParamBatch":
        """Stack params sampled by :func:`fergen.params.sample_params`.

        Raises:
            ValueError: if the list is empty, or output or face sizes differ within the batch.
        """
        if len(params) == 0:
            raise ValueError("params is empty. A batch needs at least one RenderParams.")
        first = params[0]
        for position, item in enumerate(params):
            if not isinstance(item, RenderParams):
                raise TypeError(f"params[{position}]: expected RenderParams, got {type(item).__name__}")
            if tuple(item.output_size) != tuple(first.output_size) or item.face_size != first.face_size:
                raise ValueError(f"params[{position}] has output_size {tuple(item.output_size)} and face_size "
                                 f"{item.face_size}, params[0] has {tuple(first.output_size)} and "
                                 f"{first.face_size}. All samples of a batch need one output and face size.")

        def floats(values: Any) -> torch.Tensor:
            return torch.tensor(np.asarray(values, dtype=np.float32), device=device)

        def flags(values: Any) -> torch.Tensor:
            return torch.tensor(np.asarray(values, dtype=bool), device=device)

        return cls(
            output_size=(int(first.output_size[0]), int(first.output_size[1])),
            face_size=int(first.face_size),
            homography=floats([normalized_homography(item) for item in params]),
            theta=floats([affine_theta(item) for item in params]),
            luminance_match=flags([item.luminance_match for item in params]),
            luminance_clip=floats([item.luminance_clip for item in params]),
            brightness=floats([item.brightness for item in params]),
            contrast=floats([item.contrast for item in params]),
            noise_sigma=floats([item.noise_sigma for item in params]),
            grayscale=flags([item.grayscale for item in params]),
            blur_sigma=tuple(float(item.blur_sigma) for item in params),
            noise_seed=tuple(int(item.noise_seed) for item in params),
        )


@dataclass
class RenderInputs:
    """Everything :meth:`BatchRenderer.render` needs for a batch, gathered on the CPU.

    Attributes:
        faces: uint8 (B, 3, S, S) RGB face canvases.
        masks: uint8 (B, 1, S, S) straight alpha (0-255).
        backgrounds: uint8 (B, 3, H, W) background crops at the output size.
        face_lightness: float32 (B,) mean Lab L (0-100) of each face under its alpha.
        labels: int64 (B,) class ids.
        params: the sampled params of each sample.
        indices: global sample indices.
        epoch: the epoch the params were drawn for.
        face_ids: face table row of each sample.
        background_ids: background photo of each sample (after replacing unreadable ones).
    """

    faces: torch.Tensor
    masks: torch.Tensor
    backgrounds: torch.Tensor
    face_lightness: torch.Tensor
    labels: torch.Tensor
    params: list[RenderParams]
    indices: list[int]
    epoch: int
    face_ids: list[int]
    background_ids: list[int]


def gather_inputs(renderer: Renderer, indices: Sequence[int], epoch: int = 0) -> RenderInputs:
    """Draw the params of samples ``indices`` of ``epoch`` and gather their faces and background crops.

    The draws are those of :meth:`fergen.pipeline.Renderer.sample`, so
    rendering these inputs reproduces the numpy samples. Runs on the CPU
    (OpenCV crops and resizes each photo); call it in DataLoader workers to
    keep a GPU busy.
    """
    if len(indices) == 0:
        raise ValueError("indices is empty. A batch needs at least one sample index.")
    faces = renderer.faces
    params: list[RenderParams] = []
    face_ids: list[int] = []
    background_ids: list[int] = []
    crops: list[np.ndarray] = []
    for index in indices:
        face, background, sample_params, rng = renderer.plan(int(index), epoch)
        background, photo = renderer.load_background(background, rng)
        crops.append(crop_background(photo, sample_params.output_size, sample_params.background_crop))
        params.append(sample_params)
        face_ids.append(face)
        background_ids.append(background)
    rgba = torch.from_numpy(faces.rgba[face_ids]).permute(0, 3, 1, 2)
    return RenderInputs(
        faces=rgba[:, :3].contiguous(), masks=rgba[:, 3:4].contiguous(),
        backgrounds=torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous(),
        face_lightness=torch.from_numpy(np.asarray(faces.luminance[face_ids], dtype=np.float32)),
        labels=torch.from_numpy(np.asarray(faces.labels[face_ids], dtype=np.int64)),
        params=params, indices=[int(index) for index in indices], epoch=epoch, face_ids=face_ids,
        background_ids=background_ids)


class BatchRenderer:
    """Render batches with torch on ``device``; same steps and params as :func:`fergen.render.render`.

    On the same inputs and params the output matches the numpy renderer to
    a PSNR of at least 35 dB (the tests check this on the CPU and measure
    about 57 dB). The differences come from OpenCV's warp, which rounds source
    coordinates to 1/32 pixel, and from its table-based Lab conversion (about
    0.1 L on average). The blur, grayscale and contrast steps agree to float
    rounding.

    Noise (``noise``):

    - ``"generator"`` (default): fresh standard normals from a ``torch.Generator``
      on ``device`` (the renderer's own, seeded with ``seed``, or the one passed
      to :meth:`render`). Fast, but not the numpy renderer's noise;
    - ``"bank"``: the same noise as the numpy renderer, read from
      :func:`fergen.render.noise_bank` at each sample's ``noise_seed``
      (16 MiB copied to the device once);
    - ``"none"``: no noise, regardless of ``noise_sigma``.

    Args:
        device: torch device to render on.
        noise: the noise source (see above).
        seed: seed of the renderer's own generator.

    Raises:
        ValueError: if ``device`` is not a valid torch device, or is a CUDA
            device that this torch build or machine cannot use.
    """

    def __init__(self, device: Union[torch.device, str] = "cpu", noise: NoiseSource = "generator", seed: int = 0):
        self.device = _check_device(device)
        self.noise = _check_noise(noise)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self._bank: Optional[torch.Tensor] = None

    def render(self, faces: torch.Tensor, masks: torch.Tensor, backgrounds: torch.Tensor,
               params: Union[ParamBatch, Sequence[RenderParams]], face_lightness: Optional[torch.Tensor] = None,
               generator: Optional[torch.Generator] = None, noise: Optional[NoiseSource] = None,
               feather: Optional[float] = None) -> dict[str, torch.Tensor]:
        """Render a batch.

        Args:
            faces: (B, 3, S, S) RGB face canvases, uint8 or float in [0, 1].
            masks: (B, 1, S, S) or (B, S, S) straight alpha, uint8 or float in [0, 1]. The
                :class:`~fergen.assets.FaceTable` alphas are already feathered.
            backgrounds: (B, 3, H, W) background crops at the output size, uint8 or float in [0, 1].
            params: B :class:`~fergen.params.RenderParams`, or a :class:`ParamBatch`.
            face_lightness: float (B,) mean Lab L (0-100) of each face under its
                alpha, as :class:`~fergen.assets.FaceTable` stores it; computed from
                ``faces`` and ``masks`` when omitted.
            generator: a ``torch.Generator`` on ``device`` for ``"generator"`` noise
                (default: the renderer's own).
            noise: overrides the renderer's noise source for this call.
            feather: if given, ``masks`` are hard masks and are first feathered with this
                sigma in pixels by :func:`fergen.torch.ops.feather_masks`.

        Returns:
            A dict of tensors on ``device``:

            - ``composite``: float32 (B, 3, H, W) in [0, 1];
            - ``target``: float32 (B, 3, H, W) in [0, 1], the warped face times its
              alpha, before luminance matching;
            - ``mask``: float32 (B, 1, H, W) in [0, 1];
            - ``theta``: float32 (B, 2, 3);
            - ``luminance_ratio``: float32 (B,).

        Raises:
            ValueError, TypeError: if shapes, dtypes or sizes do not fit the params
                (the message shows expected and actual values).
        """
        if not isinstance(params, ParamBatch):
            params = ParamBatch.from_params(params, self.device)
        elif params.homography.device.type != self.device.type:
            raise ValueError(f"params are on {params.homography.device}, but the renderer is on {self.device}. "
                             "Stack them with ParamBatch.from_params(params, device).")
        count = len(params)
        height, width = params.output_size
        size = params.face_size
        faces = self._as_images(faces, "faces", count, 3, (size, size))
        if isinstance(masks, torch.Tensor) and masks.dim() == 3:
            masks = masks.unsqueeze(1)
        masks = self._as_images(masks, "masks", count, 1, (size, size))
        if feather is not None:
            masks = ops.feather_masks(masks, feather)
        backgrounds = self._as_images(backgrounds, "backgrounds", count, 3, (height, width))
        if face_lightness is None:
            face_lightness = _weighted_mean(ops.lab_lightness(faces), masks)
        face_lightness = torch.as_tensor(face_lightness, dtype=torch.float32).to(self.device)
        if tuple(face_lightness.shape) != (count,):
            raise ValueError(f"face_lightness: expected shape ({count},), got {tuple(face_lightness.shape)}")

        # Step 3: warp the premultiplied face, then divide the colour by the warped alpha.
        warped = ops.warp_perspective(torch.cat((faces * masks, masks), dim=1), params.homography, (height, width))
        target = warped[:, :3]
        alpha = warped[:, 3:4]
        face = target / alpha.clamp_min(_EPSILON)

        # Step 5: luminance match.
        ratio = _luminance_ratio(face_lightness, backgrounds, alpha, params)
        face = _scale_lightness(face, ratio)

        # Step 7: composite.
        image = backgrounds + alpha * (face - backgrounds)

        # Step 8: photometric augmentation.
        image = self._photometric(image, params, generator, _check_noise(noise or self.noise))
        return {"composite": image.clamp(0.0, 1.0), "target": target.clamp(0.0, 1.0),
                "mask": alpha.clamp(0.0, 1.0), "theta": params.theta, "luminance_ratio": ratio}

    def render_samples(self, source: Any, indices: Sequence[int], epoch: int = 0, with_meta: bool = True,
                       generator: Optional[torch.Generator] = None) -> dict[str, Any]:
        """Render samples ``indices`` of ``epoch`` of a recipe into a batch like :func:`~fergen.torch.collate`'s.

        Args:
            source: a :class:`fergen.pipeline.Renderer` or a :class:`~fergen.torch.RenderDataset`
                (its renderer is used; its split and epoch are not).
            indices: global sample indices.
            epoch: the epoch whose draws to use.
            with_meta: build the per-sample metadata dicts (about as many keys as the shards' JSON);
                without it ``meta`` is a list of ``{"index", "epoch", "key"}``.
            generator: see :meth:`render`.

        Returns:
            ``composite``, ``target``, ``mask`` (float32, on ``device``), ``label``
            int64 (B,), ``theta`` float32 (B, 2, 3) and ``meta`` (list of B dicts).
        """
        renderer = getattr(source, "renderer", source)
        if not isinstance(renderer, Renderer):
            raise TypeError(f"source: expected a fergen Renderer or RenderDataset, got {type(source).__name__}")
        inputs = gather_inputs(renderer, indices, epoch)
        params = ParamBatch.from_params(inputs.params, self.device)
        output = self.render(inputs.faces.to(self.device, non_blocking=True),
                             inputs.masks.to(self.device, non_blocking=True),
                             inputs.backgrounds.to(self.device, non_blocking=True), params,
                             face_lightness=inputs.face_lightness, generator=generator)
        if with_meta:
            meta = _metadata(renderer, inputs, output)
        else:
            meta = [{"index": index, "epoch": epoch, "key": sample_key(index)} for index in inputs.indices]
        return {"composite": output["composite"], "target": output["target"], "mask": output["mask"],
                "label": inputs.labels.to(self.device), "theta": output["theta"], "meta": meta}

    def _as_images(self, images: torch.Tensor, name: str, count: int, channels: int,
                   size: tuple[int, int]) -> torch.Tensor:
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(images).__name__}")
        expected = (count, channels, *size)
        if tuple(images.shape) != expected:
            raise ValueError(f"{name}: expected shape {expected} (B, C, H, W) from the params, got "
                             f"{tuple(images.shape)}")
        images = images.to(self.device, non_blocking=True)
        if images.dtype == torch.uint8:
            return images.to(torch.float32) * (1.0 / 255.0)
        if not images.is_floating_point():
            raise TypeError(f"{name}: expected uint8 or a float dtype, got {images.dtype}")
        return images.to(torch.float32)

    def _photometric(self, image: torch.Tensor, params: ParamBatch, generator: Optional[torch.Generator],
                     noise: NoiseSource) -> torch.Tensor:
        # Contrast around each image's mean and brightness, as one affine map.
        contrast = params.contrast.view(-1, 1, 1, 1)
        mean = image.mean(dim=(1, 2, 3), keepdim=True)
        image = image * contrast + (params.brightness.view(-1, 1, 1, 1) + mean * (1.0 - contrast))

        blurred = [row for row, sigma in enumerate(params.blur_sigma) if sigma > 0.0]
        if blurred:
            rows = torch.tensor(blurred, device=image.device)
            kernels = ops.gaussian_kernels([params.blur_sigma[row] for row in blurred], image.device)
            image = image.index_copy(0, rows, ops.gaussian_blur(image.index_select(0, rows), kernels))

        grey_flags = params.grayscale.view(-1, 1, 1, 1)
        if bool(params.grayscale.any()):
            grey = ops.rgb_to_grey(image.clamp(0.0, 1.0)).expand_as(image)
            image = torch.where(grey_flags, grey, image)

        if noise == "none" or not bool((params.noise_sigma > 0).any()):
            return image
        if noise == "bank":
            normals = self._bank_noise(params)
        else:
            normals = self._generator_noise(image.shape, generator)
            normals = torch.where(grey_flags, normals[:, :1].expand_as(normals), normals)
        return image + normals * (params.noise_sigma / 255.0).view(-1, 1, 1, 1)

    def _generator_noise(self, shape: torch.Size, generator: Optional[torch.Generator]) -> torch.Tensor:
        generator = generator or self.generator
        if generator.device.type != self.device.type:
            raise ValueError(f"generator is on {generator.device}, but the renderer is on {self.device}. Create it "
                             f"with torch.Generator(device={str(self.device)!r}).")
        return torch.randn(shape, generator=generator, device=self.device, dtype=torch.float32)

    def _bank_noise(self, params: ParamBatch) -> torch.Tensor:
        """Return the numpy renderer's noise for each sample as (B, 3, H, W). Grey samples repeat one channel."""
        height, width = params.output_size
        if self._bank is None:
            self._bank = torch.from_numpy(noise_bank().copy()).to(self.device)
        bank = self._bank
        result = torch.empty((len(params), 3, height, width), device=self.device)
        grey_flags = params.grayscale.tolist()
        for grey in (False, True):
            rows = [row for row, flag in enumerate(grey_flags) if flag == grey]
            if not rows:
                continue
            channels = 1 if grey else 3
            count = height * width * channels
            if count * 4 > bank.numel():
                # Large images draw fresh normals in numpy too; copy them over.
                windows = torch.stack([torch.from_numpy(gaussian_noise(params.noise_seed[row], (count,)))
                                       for row in rows]).to(self.device)
            else:
                offsets = torch.tensor([params.noise_seed[row] % (bank.numel() - count) for row in rows],
                                       device=self.device)
                windows = bank.unfold(0, count, 1)[offsets]
            # The bank is read in (H, W, C) order, as numpy lays out an image.
            images = windows.view(len(rows), height, width, channels).permute(0, 3, 1, 2)
            result[torch.tensor(rows, device=self.device)] = images.expand(-1, 3, -1, -1)
        return result


def _check_device(device: Union[torch.device, str]) -> torch.device:
    """Return ``device`` as a torch.device, raising a clear error when torch cannot render on it."""
    try:
        checked = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"invalid device {device!r} ({error}); use 'cpu', 'cuda' or 'cuda:N'") from None
    if checked.type != "cuda":
        return checked
    if not torch.backends.cuda.is_built():
        raise ValueError(f"device {str(device)!r}: CUDA is not available in this torch build "
                         f"(torch {torch.__version__}); use device='cpu' or install a CUDA build of torch")
    if not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r}: torch was built with CUDA but finds no usable GPU "
                         "(check the NVIDIA driver and CUDA_VISIBLE_DEVICES); use device='cpu'")
    count = torch.cuda.device_count()
    if checked.index is not None and checked.index >= count:
        raise ValueError(f"device {str(device)!r} not found: this machine has {count} CUDA device(s), "
                         f"cuda:0 to cuda:{count - 1}")
    return checked


def _check_noise(noise: str) -> NoiseSource:
    if noise not in _NOISE_SOURCES:
        raise ValueError(f"noise must be one of {_NOISE_SOURCES}, got {noise!r}")
    return noise  # type: ignore[return-value]


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per-sample mean of (B, 1, H, W) values weighted by (B, 1, H, W) weights; 0 where the weights sum to 0."""
    total = weights.sum(dim=(1, 2, 3))
    weighted = (values * weights).sum(dim=(1, 2, 3))
    return torch.where(total > _EPSILON, weighted / total.clamp_min(_EPSILON), torch.zeros_like(total))


def _luminance_ratio(face_lightness: torch.Tensor, backgrounds: torch.Tensor, alpha: torch.Tensor,
                     params: ParamBatch) -> torch.Tensor:
    """Step 5a per sample: clip(mean L(background under alpha) / face L), or 1 where matching is off or undefined."""
    background_lightness = _weighted_mean(ops.lab_lightness(backgrounds), alpha)
    ratio = background_lightness / face_lightness.clamp_min(_EPSILON)
    ratio = torch.minimum(torch.maximum(ratio, params.luminance_clip[:, 0]), params.luminance_clip[:, 1])
    defined = (face_lightness > _EPSILON) & (alpha.sum(dim=(1, 2, 3)) > _EPSILON) & params.luminance_match
    return torch.where(defined, ratio, torch.ones_like(ratio))


def _scale_lightness(face: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """Step 5b: multiply Lab L by ``ratio`` (capped at 100) and keep a and b. Samples with ratio 1 are unchanged."""
    rows = torch.nonzero(ratio != 1.0).flatten()
    if rows.numel() == 0:
        return face
    lab = ops.rgb_to_lab(face.index_select(0, rows))
    lightness = (lab[:, 0:1] * ratio.index_select(0, rows).view(-1, 1, 1, 1)).clamp_max(100.0)
    scaled = ops.lab_to_rgb(torch.cat((lightness, lab[:, 1:]), dim=1))
    return face.index_copy(0, rows, scaled)


def _metadata(renderer: Renderer, inputs: RenderInputs, output: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
    """Build each sample's metadata as :meth:`Renderer.sample` does, with this renderer's luminance ratio."""
    ratios = output["luminance_ratio"].tolist()
    alpha_sums = output["mask"].sum(dim=(1, 2, 3)).tolist()
    canonical_areas = (inputs.masks.to(torch.float32) * (1.0 / 255.0)).sum(dim=(1, 2, 3)).tolist()
    metadata = []
    for row, (index, params) in enumerate(zip(inputs.indices, inputs.params)):
        matrix = face_to_output_matrix(params)
        # Local area scale of the homography at the canvas centre, as fergen.render.render computes it.
        centre = (params.face_size - 1) / 2.0
        depth = float(matrix[2] @ np.array([centre, centre, 1.0]))
        area_scale = abs(float(np.linalg.det(matrix))) / abs(depth) ** 3
        visible = alpha_sums[row] / max(canonical_areas[row] * area_scale, _EPSILON)
        face_alpha = inputs.masks[row, 0].numpy()
        facts = {
            "luminance_ratio": round(float(ratios[row]), 6),
            "visible_fraction": round(min(1.0, visible), 4),
            "face_box": face_box(matrix, face_alpha),
            "homography": [[round(float(v), 8) for v in line] for line in normalized_homography(params)],
            "theta": [[round(float(v), 8) for v in line] for line in affine_theta(params)],
        }
        meta = renderer.metadata(index, inputs.epoch, inputs.face_ids[row], inputs.background_ids[row], params,
                                 facts)
        meta["key"] = sample_key(index)
        metadata.append(meta)
    return metadata
