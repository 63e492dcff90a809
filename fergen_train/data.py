"""Datasets for fit and evaluate, built on fergen's recipes, shards and face sources.

Together with :mod:`fergen_train.images`, this module is where fergen_train
uses fergen's data API, so a change there stays a small change here. Three
kinds of data exist:

- a recipe rendered on the fly (:class:`fergen.torch.RenderDataset`);
- WebDataset shards written by ``fergen render`` (:class:`fergen.torch.ShardDataset`);
- the real face images of a recipe's face source (:class:`RealFacesDataset`),
  for evaluation on photos rather than renders.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from fergen.errors import DataError
from fergen.recipe import Recipe, load_recipe, resolve_data_root
from fergen.shards import MANIFEST, read_manifest
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
    #: DataLoader ``collate_fn``; ``None`` uses torch's default collation.
    collate_fn: Callable[[list[Any]], Any] | None = None


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


def recipe_with_fold_part(recipe: Recipe, part: str | None, source: str) -> Recipe:
    """Return ``recipe`` with ``faces.subjects.fold.part`` set to ``part`` (``train`` or ``test``).

    Raises:
        DataError: if a part is requested but the recipe selects no fold.
    """
    if part is None:
        return recipe
    if part not in ("train", "test"):
        raise DataError(f"{source}: fold part {part!r} is invalid; use train or test")
    fold = recipe.faces.subjects.fold
    if fold is None:
        raise DataError(
            f"{source}: fold part {part!r} requested but the recipe has no faces.subjects.fold; "
            "add a fold to the recipe or drop the fold part"
        )
    subjects = dataclasses.replace(recipe.faces.subjects, fold=dataclasses.replace(fold, part=part))
    return dataclasses.replace(recipe, faces=dataclasses.replace(recipe.faces, subjects=subjects))


def open_source(source: DataSourceConfig, train: bool = False, seed: int = 0) -> LoadedData:
    """Open a rendered dataset: a recipe rendered on the fly, or shards.

    Args:
        source: The data entry.
        train: Shuffle shards through a buffer of ``source.shuffle_buffer``
            samples; evaluation reads them in stored order.
        seed: Seed of the shard shuffle.

    Raises:
        DataError: if fergen.torch is missing or the data cannot be opened.
        RecipeError: if the recipe is invalid.
    """
    fergen_torch = _fergen_torch()
    if source.recipe is not None:
        recipe = recipe_with_fold_part(load_recipe(source.recipe), source.fold_part, source.recipe)
        dataset = fergen_torch.RenderDataset(
            recipe,
            epoch=0,
            split=source.split,
            length=source.length,
            val_fraction=source.val_fraction,
            data_root=source.data_root,
        )
        description = f"recipe {source.recipe} ({len(dataset)} samples, split {source.split}"
        if source.fold_part is not None:
            description += f", fold part {source.fold_part}"
        description += ")"
        return LoadedData(
            dataset, tuple(dataset.class_names), dataset.recipe_sha256, description, fergen_torch.collate
        )

    dataset = fergen_torch.ShardDataset(
        list(source.shards), shuffle=source.shuffle_buffer if train else 0, seed=seed
    )
    if dataset.class_names is None:
        raise DataError(
            f"shards {source.shards[0]!r}: no manifest.json beside them, so the class names are unknown; "
            "read shards from a folder that fergen render finished"
        )
    description = describe_shards(dataset.shards)
    return LoadedData(
        dataset, tuple(dataset.class_names), shard_recipe_sha256(dataset.shards), description, fergen_torch.collate
    )


def describe_shards(urls: Sequence[str]) -> str:
    """Describe shard URLs for logs: one shard by name, shards of one folder by the folder.

    Examples: ``shard out/shard-000000.tar``, ``4 shards in out/`` and, for
    shards in different folders or remote ones, ``3 shards: a/x.tar to b/y.tar``.
    """
    if len(urls) == 1:
        return f"shard {urls[0]}"
    folders = {url.rsplit("/", 1)[0] if "/" in url else "." for url in urls}
    if len(folders) == 1:
        return f"{len(urls)} shards in {folders.pop()}/"
    return f"{len(urls)} shards: {urls[0]} to {urls[-1]}"


def shard_recipe_sha256(shards: Sequence[str]) -> str | None:
    """Return the recipe sha256 from the manifest beside the local shards, or ``None`` when unknown.

    Raises:
        DataError: if the shards come from folders rendered from different recipes.
    """
    hashes = {}
    for url in shards:
        if "://" in url and not url.startswith("file://"):
            continue  # remote shards: their manifest is not read here
        folder = Path(url.removeprefix("file://")).parent
        manifest = folder / MANIFEST
        if folder not in hashes and manifest.is_file():
            hashes[folder] = read_manifest(folder).get("recipe_sha256")
    distinct = set(hashes.values())
    if len(distinct) > 1:
        raise DataError(
            f"the shards come from {len(distinct)} different recipes ({', '.join(str(f) for f in hashes)}); "
            "train on shards of one recipe"
        )
    return distinct.pop() if distinct else None


def parse_data_argument(
    text: str,
    split: str = "all",
    fold_part: str | None = None,
    data_root: str | None = None,
) -> DataSourceConfig:
    """Interpret the DATA argument of ``fergen-train evaluate``.

    A ``.tar`` file, a brace pattern, a URL or a folder means shards. Anything
    else is a recipe path or the name of a bundled recipe.
    """
    is_shards = text.endswith(".tar") or "{" in text or "://" in text or Path(text).is_dir()
    if is_shards:
        if split != "all" or fold_part is not None:
            raise DataError(f"--split and --fold-part apply to recipes, but {text!r} names shards; drop them")
        return DataSourceConfig(shards=(text,), data_root=data_root)
    return DataSourceConfig(recipe=text, split=split, fold_part=fold_part, data_root=data_root)


class RealFacesDataset(Dataset):
    """The real images of a recipe's selected faces, as evaluation batches.

    Faces are selected as the recipe selects them for rendering (classes,
    subjects, fold and limit), but the photos are used as they are: each is
    optionally cropped to the detected face, then resized to ``input_size``.
    Samples have ``composite`` float32 (3, H, W) in [0, 1], ``label`` int64
    and no ``target``. Their ``meta`` dict has ``path`` (the image file, empty
    for sources that decode pixels themselves), ``face_id``, and
    ``face_found``: whether a face was detected, ``None`` without
    ``face_crop``. Batch them with :func:`collate_real_faces`.

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
        meta = {
            "path": record.path or "",
            "face_id": record.id,
            "face_found": (box is not None) if self.face_crop else None,
        }
        return {
            "composite": to_model_input(image, self.input_size),
            "label": torch.tensor(self.labels[index], dtype=torch.int64),
            "meta": meta,
        }


def collate_real_faces(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Batch :class:`RealFacesDataset` samples: stacked ``composite`` and ``label``, and a list of ``meta`` dicts."""
    return {
        "composite": torch.stack([sample["composite"] for sample in samples]),
        "label": torch.stack([sample["label"] for sample in samples]),
        "meta": [sample["meta"] for sample in samples],
    }


def open_real_faces(source: DataSourceConfig, input_size: Sequence[int], face_crop: bool = True) -> LoadedData:
    """Open the real face images of a recipe for evaluation (see :class:`RealFacesDataset`)."""
    if source.recipe is None:
        raise DataError("real-image evaluation needs a recipe naming the face source, not shards")
    if source.split != "all":
        raise DataError("--split carves rendered samples; with --real select faces with --fold-part instead")
    recipe = recipe_with_fold_part(load_recipe(source.recipe), source.fold_part, source.recipe)
    dataset = RealFacesDataset(recipe, input_size, source.data_root, face_crop)
    description = f"real faces of recipe {source.recipe} ({len(dataset)} images"
    if source.fold_part is not None:
        description += f", fold part {source.fold_part}"
    description += ")"
    return LoadedData(dataset, dataset.class_names, None, description, collate_real_faces)


def load_training_data(config: TrainConfig) -> tuple[LoadedData, LoadedData | None]:
    """Open ``data.train`` and, when set, ``data.val`` of a training config.

    Raises:
        DataError: if ``data.train`` is missing or the validation classes differ.
    """
    if config.data.train is None:
        raise DataError("the config has no data.train; set data.train.recipe or data.train.shards")
    train = open_source(config.data.train, train=True, seed=config.seed)
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
