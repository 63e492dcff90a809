"""Datasets for fit and evaluate, built on fergen's recipes, shards and face sources.

This module is the only place where fergen_train reaches into fergen's data
API, so a change there stays a small change here. Three kinds of data exist:

- a recipe rendered on the fly (:class:`fergen.torch.RenderDataset`);
- WebDataset shards written by ``fergen render`` (:class:`fergen.torch.ShardDataset`);
- the real face images of a recipe's face source (:class:`RealFacesDataset`),
  for evaluation on photos rather than renders.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from fergen.errors import DataError
from fergen.recipe import Recipe, load_recipe, resolve_data_root
from fergen.selection import select_faces
from fergen_train.config import DataSourceConfig, TrainConfig
from fergen_train.images import crop_square, face_crop_box, to_model_input

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedData:
    """A dataset with the class names of its labels and the recipe it came from."""

    dataset: Dataset
    class_names: tuple[str, ...]
    #: sha256 of the recipe (rendered data), or ``None`` when unknown.
    recipe_sha256: str | None
    #: Short human-readable description for logs and metrics files.
    description: str


def fergen_torch_available() -> bool:
    """Return whether fergen.torch provides RenderDataset and ShardDataset."""
    try:
        _fergen_torch()
    except DataError:
        return False
    return True


def _fergen_torch() -> Any:
    try:
        import fergen.torch as fergen_torch
    except ImportError as error:
        raise DataError(
            f"fergen.torch, which provides RenderDataset and ShardDataset, cannot be imported ({error}); "
            "install fergen with its torch extra: pip install 'fergen[torch]'"
        ) from error
    missing = [name for name in ("RenderDataset", "ShardDataset") if not hasattr(fergen_torch, name)]
    if missing:
        raise DataError(
            f"this fergen ({fergen_torch.__name__}) has no {' or '.join(missing)}; "
            "install a fergen release that includes its torch datasets"
        )
    return fergen_torch


def recipe_with_split(recipe: Recipe, split: str | None, source: str) -> Recipe:
    """Return ``recipe`` with its subject fold's part set to ``split`` (``train`` or ``test``).

    Raises:
        DataError: if a split is requested but the recipe selects no fold.
    """
    if split is None:
        return recipe
    if split not in ("train", "test"):
        raise DataError(f"{source}: split {split!r} is invalid; use train or test")
    fold = recipe.faces.subjects.fold
    if fold is None:
        raise DataError(
            f"{source}: split {split!r} requested but the recipe has no faces.subjects.fold; "
            "add a fold to the recipe or drop the split"
        )
    subjects = dataclasses.replace(recipe.faces.subjects, fold=dataclasses.replace(fold, part=split))
    return dataclasses.replace(recipe, faces=dataclasses.replace(recipe.faces, subjects=subjects))


def open_source(source: DataSourceConfig) -> LoadedData:
    """Open a rendered dataset: a recipe rendered on the fly, or shards.

    Raises:
        DataError: if fergen.torch is missing or the data cannot be opened.
        RecipeError: if the recipe is invalid.
    """
    fergen_torch = _fergen_torch()
    if source.recipe is not None:
        recipe = recipe_with_split(load_recipe(source.recipe), source.split, source.recipe)
        dataset = fergen_torch.RenderDataset(recipe, epoch=0, data_root=source.data_root)
        description = f"recipe {source.recipe}" + (f" ({source.split} split)" if source.split else "")
        return LoadedData(dataset, tuple(dataset.class_names), dataset.recipe_sha256, description)

    urls = expand_shard_argument(source.shards)
    dataset = fergen_torch.ShardDataset(urls)
    description = f"{len(urls)} shards from {urls[0]}"
    return LoadedData(dataset, tuple(dataset.class_names), getattr(dataset, "recipe_sha256", None), description)


def expand_shard_argument(shards: Sequence[str]) -> list[str]:
    """Replace each local folder in ``shards`` by the sorted ``*.tar`` files it contains."""
    urls: list[str] = []
    for item in shards:
        path = Path(item)
        if "://" not in item and path.is_dir():
            found = sorted(str(tar) for tar in path.glob("*.tar"))
            if not found:
                raise DataError(f"shard folder {item!r} contains no .tar files; pass a folder written by fergen render")
            urls.extend(found)
        else:
            urls.append(item)
    return urls


def parse_data_argument(text: str, split: str | None = None, data_root: str | None = None) -> DataSourceConfig:
    """Interpret the DATA argument of ``fergen-train evaluate``.

    A ``.tar`` file, a brace pattern, a URL or a folder is read as shards;
    anything else as a recipe path or the name of a bundled recipe.
    """
    is_shards = text.endswith(".tar") or "{" in text or "://" in text or Path(text).is_dir()
    if is_shards:
        if split is not None:
            raise DataError(f"--split applies to recipes, but {text!r} names shards; drop --split")
        return DataSourceConfig(shards=(text,), data_root=data_root)
    return DataSourceConfig(recipe=text, split=split, data_root=data_root)


class RealFacesDataset(Dataset):
    """The real images of a recipe's selected faces, as evaluation batches.

    Faces are selected as the recipe selects them for rendering (classes,
    subjects, fold and limit), but the photos are used as they are: each is
    optionally cropped to the detected face, then resized to ``input_size``.
    Samples have ``composite`` float32 (3, H, W) in [0, 1] and ``label`` int64,
    and no ``target``.

    Args:
        recipe: Validated recipe whose ``faces`` section names the source.
        input_size: (height, width) of the model input.
        data_root: Folder the recipe's relative paths resolve against.
        face_crop: Crop to the largest face found by fergen's detector. Images
            with no detected face are used whole.
    """

    def __init__(
        self,
        recipe: Recipe,
        input_size: Sequence[int],
        data_root: str | Path | None = None,
        face_crop: bool = True,
    ) -> None:
        self.source = recipe.faces.open(resolve_data_root(data_root))
        selection = select_faces(recipe.faces, self.source, recipe.seed)
        self.records = selection.records
        self.labels = selection.label_ids
        self.class_names = tuple(selection.class_names)
        self.input_size = tuple(input_size)
        self.face_crop = face_crop
        self.mask_config = recipe.faces.mask

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        image = self.source.load_image(record)
        box = face_crop_box(image, self.mask_config) if self.face_crop else None
        if box is not None:
            image = crop_square(image, box)
        return {
            "composite": to_model_input(image, self.input_size),
            "label": torch.tensor(self.labels[index], dtype=torch.int64),
            "face_found": torch.tensor(box is not None),
        }


def open_real_faces(source: DataSourceConfig, input_size: Sequence[int], face_crop: bool = True) -> LoadedData:
    """Open the real face images of a recipe for evaluation (see :class:`RealFacesDataset`)."""
    if source.recipe is None:
        raise DataError("real-image evaluation needs a recipe naming the face source, not shards")
    recipe = recipe_with_split(load_recipe(source.recipe), source.split, source.recipe)
    dataset = RealFacesDataset(recipe, input_size, source.data_root, face_crop)
    description = f"real faces of recipe {source.recipe}" + (f" ({source.split} split)" if source.split else "")
    return LoadedData(dataset, dataset.class_names, None, description)


def load_training_data(config: TrainConfig) -> tuple[LoadedData, LoadedData | None]:
    """Open ``data.train`` and, when set, ``data.val`` of a training config.

    Raises:
        DataError: if ``data.train`` is missing or the validation classes differ.
    """
    if config.data.train is None:
        raise DataError("the config has no data.train; set data.train.recipe or data.train.shards")
    train = open_source(config.data.train)
    val = open_source(config.data.val) if config.data.val is not None else None
    if val is not None and val.class_names != train.class_names:
        raise DataError(
            f"data.val has classes {list(val.class_names)} but data.train has {list(train.class_names)}; "
            "use recipes with the same classes in the same order"
        )
    return train, val


def label_mapping(data_classes: Sequence[str], model_classes: Sequence[str], description: str) -> np.ndarray | None:
    """Map the data's label indices to the model's; ``None`` when they already agree.

    Raises:
        DataError: if the data has a class the model was not trained on.
    """
    if list(data_classes) == list(model_classes):
        return None
    unknown = [name for name in data_classes if name not in model_classes]
    if unknown:
        raise DataError(
            f"{description} has classes {unknown} that the checkpoint does not know "
            f"(it has {list(model_classes)}); map them in the recipe's faces.classes"
        )
    return np.array([list(model_classes).index(name) for name in data_classes], dtype=np.int64)


def remap_labels(batches: Iterable[Mapping[str, Any]], mapping: np.ndarray | None) -> Iterator[Mapping[str, Any]]:
    """Yield batches with ``label`` translated through ``mapping`` (unchanged when ``None``)."""
    table = None if mapping is None else torch.from_numpy(mapping)
    for batch in batches:
        if table is None:
            yield batch
        else:
            yield {**batch, "label": table[batch["label"]]}
