"""A map-style torch Dataset that renders each sample when it is requested."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Optional, Sequence, Union

from torch.utils.data import Dataset

from ..pipeline import Renderer
from ..recipe import Recipe, load_recipe
from ..shards import sample_key
from .samples import make_sample
from .workers import SharedEpoch


Split = Literal["all", "train", "val"]
_SPLITS = ("all", "train", "val")


def split_indices(count: int, split: Split, val_fraction: float) -> range:
    """Return the sample indices of ``split`` among ``range(count)``.

    ``val`` is the last ``round(count * val_fraction)`` indices (at least one
    when the fraction is above zero), ``train`` the indices before them and
    ``all`` every index.

    Raises:
        ValueError: for an unknown split, a fraction outside [0, 1), or a split that would be empty.
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    val_count = 0 if val_fraction == 0.0 else max(1, round(count * val_fraction))
    if split == "all":
        return range(count)
    if split == "val":
        if val_count == 0:
            raise ValueError("split='val' with val_fraction=0 selects no samples; set val_fraction above 0")
        return range(count - val_count, count)
    if val_count >= count:
        raise ValueError(f"split='train' is empty: val_fraction={val_fraction} of {count} samples leaves none")
    return range(0, count - val_count)


class RenderDataset(Dataset):
    """Render sample ``i`` of an epoch on demand, as ``fergen render`` writes it into shards.

    Item ``i`` is sample ``indices[i]`` rendered from the recipe's generator
    for ``(seed, epoch, indices[i])``. At epoch 0 it equals sample
    ``indices[i]`` of ``fergen render`` (same params; same pixels before the
    composite is encoded as JPEG). Items depend only on the recipe, the epoch
    and the index, never on the DataLoader worker that renders them, so any
    worker count gives the same items and no two workers repeat a draw.

    Which indices the dataset covers, in this order of precedence:

    - ``indices``: an explicit sequence of global sample indices (any integers >= 0);
    - else ``length`` (default ``recipe.output.samples``) carved by ``split``:
      ``"all"`` is ``range(length)``, ``"val"`` the last
      ``round(length * val_fraction)`` indices and ``"train"`` the ones before.

    NOTE: ``train`` and ``val`` of one recipe share faces and subjects, and
    only the augmentation differs. For a subject-independent evaluation, render
    the validation data from a recipe with ``faces.subjects.fold.part: test``.

    Args:
        recipe: a :class:`fergen.recipe.Recipe`, a YAML path or a bundled recipe name (``"demo"``).
        epoch: the epoch whose draws the items use; change it later with :meth:`set_epoch`.
        split: ``"all"``, ``"train"`` or ``"val"`` (see above).
        length: sample count to carve the split from (default ``recipe.output.samples``).
        indices: explicit global sample indices (excludes ``split`` and ``length``).
        val_fraction: fraction of ``length`` that forms the ``val`` split.
        data_root: folder relative recipe paths resolve against (default ``FERGEN_DATA_ROOT`` or ``.``).
        renderer: a prepared :class:`fergen.pipeline.Renderer` of this recipe to reuse.
        cache_dir: face cache folder (default ``FERGEN_CACHE_DIR`` or ``~/.cache/fergen``).

    Items are dicts (see :mod:`fergen.torch.samples`): ``composite``,
    ``target`` float32 (3, H, W) and ``mask`` float32 (1, H, W), all in [0, 1];
    ``label`` int; ``theta`` float32 (2, 3); ``meta`` dict (the shard's JSON
    metadata plus ``key``). Batch them with :func:`fergen.torch.collate`.

    Raises:
        ValueError: for conflicting or out-of-range split arguments.
        fergen.errors.RecipeError: for an invalid recipe.
        fergen.errors.DataError: if the faces or backgrounds cannot be loaded.
    """

    def __init__(self, recipe: Union[Recipe, str, os.PathLike], epoch: int = 0, split: Split = "all",
                 length: Optional[int] = None, indices: Optional[Sequence[int]] = None, val_fraction: float = 0.1,
                 data_root: Union[str, os.PathLike, None] = None, renderer: Optional[Renderer] = None,
                 cache_dir: Union[str, os.PathLike, None] = None):
        self.recipe: Recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
        if renderer is not None and renderer.recipe.sha256 != self.recipe.sha256:
            raise ValueError(f"renderer was built for recipe {renderer.recipe.sha256[:12]}, not for "
                             f"{self.recipe.sha256[:12]}; pass a renderer of the same recipe or none")
        self.indices = self._select_indices(split, length, indices, val_fraction)
        self.split = split
        self._epoch = SharedEpoch(epoch)
        if renderer is None:
            renderer = Renderer(self.recipe, data_root, cache_dir=None if cache_dir is None else Path(cache_dir))
        self.renderer = renderer

    def _select_indices(self, split: Split, length: Optional[int], indices: Optional[Sequence[int]],
                        val_fraction: float) -> Sequence[int]:
        if indices is not None:
            if split != "all" or length is not None:
                raise ValueError("pass either indices or split/length, not both: indices already selects "
                                 "the samples")
            selected = [int(index) for index in indices]
            negative = [index for index in selected if index < 0]
            if negative:
                raise ValueError(f"indices must be >= 0, got {negative[:5]}")
            return selected
        count = self.recipe.output.samples if length is None else length
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"length must be a positive integer, got {length!r}")
        return split_indices(count, split, val_fraction)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names indexed by label."""
        return self.renderer.class_names

    @property
    def recipe_sha256(self) -> str:
        return self.recipe.sha256

    @property
    def epoch(self) -> int:
        return self._epoch.get()

    def set_epoch(self, epoch: int) -> None:
        """Use the draws of ``epoch`` from now on, in this process and in DataLoader workers.

        Call it before iterating the DataLoader for that epoch: batches that
        workers have already prefetched keep the previous epoch.
        """
        self._epoch.set(epoch)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> dict[str, Any]:
        if not -len(self) <= item < len(self):
            raise IndexError(f"RenderDataset index {item} out of range for {len(self)} samples")
        index = self.indices[item]
        sample = self.renderer.sample(index, epoch=self.epoch)
        meta = dict(sample.metadata, key=sample_key(index))
        return make_sample(sample.composite, sample.target, sample.mask, sample.label, sample.theta, meta)

    def __repr__(self) -> str:
        return (f"RenderDataset(recipe={self.recipe.name!r} ({self.recipe.sha256[:12]}), samples={len(self)}, "
                f"split={self.split!r}, epoch={self.epoch})")

