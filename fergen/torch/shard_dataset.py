"""An IterableDataset over fergen's WebDataset shards: split, shuffle, read and decode in workers.

Reading follows the usual WebDataset order. The shard list is split by
rank, then by DataLoader worker, and each worker streams its shards,
shuffles samples in a buffer and decodes them. When there are fewer shards than
ranks (or than a rank's workers), those readers split the samples of the
shards instead, so each epoch still reads every sample exactly once.
"""

from __future__ import annotations

import json
import logging
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence, Union

import braceexpand
import numpy as np
from torch.utils.data import IterableDataset

from ..errors import ShardError
from ..imageio import decode_image_bytes
from ..params import RenderParams, affine_theta
from ..shards import MANIFEST
from .samples import make_sample
from .workers import SharedEpoch, WorkerSlot, current_slot

log = logging.getLogger(__name__)

COMPOSITE_EXTENSIONS = ("jpg", "png")
REQUIRED_MEMBERS = ("cls", "face.png", "json", "mask.png")
_VERIFY_HINT = ("Run 'fergen verify OUT --deep' to list damaged shards, and rerun 'fergen render' with the same "
                "recipe and output folder to rewrite them.")


def decode_sample(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Decode one raw WebDataset sample of a fergen shard into a sample dict.

    ``raw`` is what ``webdataset`` yields before decoding: ``__key__``,
    ``__url__`` and the member bytes by extension (``cls``, ``face.png``,
    ``jpg`` or ``png``, ``json``, ``mask.png``). ``theta`` is recomputed from
    the params in the JSON metadata, so it equals :class:`RenderDataset`'s
    bit for bit. ``meta`` is the JSON metadata plus ``key`` and ``url``.

    Raises:
        fergen.errors.ShardError: naming the shard and key, if a member is missing or undecodable.
    """
    key = raw.get("__key__", "?")
    url = raw.get("__url__", "?")
    where = f"{shard_label(url)}: sample {key}"
    missing = [member for member in REQUIRED_MEMBERS if member not in raw]
    composite_members = [extension for extension in COMPOSITE_EXTENSIONS if extension in raw]
    if missing or len(composite_members) != 1:
        present = sorted(name for name in raw if not name.startswith("__"))
        raise ShardError(f"{where} has members {present}; a fergen sample needs {list(REQUIRED_MEMBERS)} "
                         f"and one of {list(COMPOSITE_EXTENSIONS)}. {_VERIFY_HINT}")
    try:
        meta = json.loads(raw["json"])
        label = int(raw["cls"])
        composite = decode_image_bytes(raw[composite_members[0]], f"{where} {composite_members[0]}")
        target = decode_image_bytes(raw["face.png"], f"{where} face.png")
        mask = decode_image_bytes(raw["mask.png"], f"{where} mask.png")
    except (ValueError, UnicodeDecodeError) as error:
        raise ShardError(f"{where}: {error}. {_VERIFY_HINT}") from None
    if composite.ndim != 3 or target.ndim != 3 or mask.ndim != 2:
        raise ShardError(f"{where}: expected RGB composite and target and a grey mask, got shapes "
                         f"{composite.shape}, {target.shape}, {mask.shape}. {_VERIFY_HINT}")
    if "params" in meta:
        theta = affine_theta(RenderParams.from_dict(meta["params"]))
    elif "theta" in meta:
        theta = np.asarray(meta["theta"], dtype=np.float32)
    else:
        raise ShardError(f"{where}: the JSON metadata has neither 'params' nor 'theta'. {_VERIFY_HINT}")
    meta = dict(meta, key=key, url=url)
    return make_sample(composite, target, mask, label, theta, meta)


def shard_label(url: str) -> str:
    """Return the file name of a shard URL, for messages."""
    return url.rstrip("/").rsplit("/", 1)[-1] or url


def _has_scheme(url: str) -> bool:
    return "://" in url


def _local_path(url: str) -> Optional[Path]:
    if url.startswith("file://"):
        return Path(url[len("file://"):])
    return None if _has_scheme(url) else Path(url)


def expand_urls(urls: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]) -> list[str]:
    """Expand shard URLs: brace patterns (``shard-{000000..000003}.tar``), ``::`` lists and output folders.

    A local folder stands for the shards listed in its ``manifest.json``, in order.

    Raises:
        ValueError: if nothing is left after expansion.
        fergen.errors.ShardError: if a folder has no readable manifest.
    """
    items = [urls] if isinstance(urls, (str, os.PathLike)) else list(urls)
    expanded: list[str] = []
    for item in items:
        for part in os.fspath(item).split("::"):
            for url in braceexpand.braceexpand(part):
                local = _local_path(url)
                if local is not None and local.is_dir():
                    expanded.extend(str(local / entry["name"]) for entry in _read_manifest(local)["shards"])
                else:
                    expanded.append(url)
    if not expanded:
        raise ValueError(f"no shard URLs in {urls!r}; pass a shard path, a brace pattern or an output folder")
    return expanded


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ShardError(f"{path} not found: {folder} is not a fergen output folder. Pass its shards "
                         "(a path or brace pattern) or a folder that 'fergen render' finished.") from None
    except (OSError, ValueError) as error:
        raise ShardError(f"{path} is unreadable ({error}); rerun 'fergen render' to rewrite it.") from None


@dataclass(frozen=True)
class ShardCatalog:
    """Class names and per-shard sample counts from the manifests beside local shards."""

    class_names: Optional[tuple[str, ...]]
    counts: dict[str, int]
    #: sha256 of the recipe that rendered the shards; None without a manifest or when folders differ.
    recipe_sha256: Optional[str] = None


def read_catalog(shards: Sequence[str]) -> ShardCatalog:
    """Collect class names and sample counts from the ``manifest.json`` beside each local shard.

    Raises:
        ValueError: if two manifests list different class names.
    """
    class_names: Optional[tuple[str, ...]] = None
    source = ""
    counts: dict[str, int] = {}
    recipes: set[str] = set()
    seen: set[Path] = set()
    for url in shards:
        local = _local_path(url)
        if local is None:
            continue
        folder = local.parent
        if folder in seen or not (folder / MANIFEST).is_file():
            continue
        seen.add(folder)
        manifest = _read_manifest(folder)
        names = tuple(manifest.get("class_names", ()))
        if class_names is not None and names != class_names:
            raise ValueError(f"{folder / MANIFEST} lists classes {list(names)}, but {source} lists "
                             f"{list(class_names)}; read shards with different class lists separately")
        class_names, source = names, str(folder / MANIFEST)
        if manifest.get("recipe_sha256"):
            recipes.add(str(manifest["recipe_sha256"]))
        for entry in manifest.get("shards", []):
            counts[str(folder / entry["name"])] = int(entry["samples"])
    recipe_sha256 = next(iter(recipes)) if len(recipes) == 1 else None
    return ShardCatalog(class_names=class_names, counts=counts, recipe_sha256=recipe_sha256)


@dataclass(frozen=True)
class ReadPlan:
    """The shards one reader streams, and which of their samples it keeps.

    The reader keeps the samples at positions ``offset``, ``offset + stride``, ...
    of the concatenated stream of ``shards`` (``stride`` 1 keeps all).
    """

    shards: list[str]
    stride: int
    offset: int


def plan_reading(shards: Sequence[str], slot: WorkerSlot) -> ReadPlan:
    """Split ``shards`` by rank, then by worker; fall back to splitting samples when shards run out."""
    if len(shards) >= slot.world_size:
        rank_shards = list(shards[slot.rank::slot.world_size])
        if len(rank_shards) >= slot.num_workers:
            return ReadPlan(rank_shards[slot.worker::slot.num_workers], 1, 0)
        return ReadPlan(rank_shards, slot.num_workers, slot.worker)
    readers = slot.world_size * slot.num_workers
    return ReadPlan(list(shards), readers, slot.rank + slot.world_size * slot.worker)


class _ShardBroken(Exception):
    """A shard stopped being readable; the rest of it is skipped."""

    def __init__(self, url: str, key: Optional[str], partial: bool, cause: BaseException):
        if key is None:
            where = "before its first sample"
        else:
            where = f"at sample {key}, which is incomplete" if partial else f"after sample {key}"
        super().__init__(f"{shard_label(url)}: unreadable tar {where} ({type(cause).__name__}: {cause})")


def _is_complete(sample: Mapping[str, Any]) -> bool:
    return (all(member in sample for member in REQUIRED_MEMBERS)
            and sum(extension in sample for extension in COMPOSITE_EXTENSIONS) == 1)


def _open(url: str, storage_options: Mapping[str, Any]):
    local = _local_path(url)
    if local is not None:
        return open(local, "rb")
    import fsspec

    return fsspec.open(url, "rb", **storage_options).open()


def iter_shard(url: str, storage_options: Optional[Mapping[str, Any]] = None) -> Iterator[dict[str, Any]]:
    """Yield the raw samples of one shard (``__key__``, ``__url__`` and member bytes by extension).

    Members are grouped by the key before the first dot of their names.
    Members of a key are consecutive in fergen shards, as in any WebDataset shard.

    Raises:
        _ShardBroken: if the tar is truncated or corrupt, after yielding every complete sample before the damage.
    """
    current: Optional[dict[str, Any]] = None
    last_key: Optional[str] = None
    try:
        with _open(url, storage_options or {}) as stream, tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                key, _, extension = member.name.rpartition("/")[2].partition(".")
                if current is not None and key != current["__key__"]:
                    yield current
                    last_key = current["__key__"]
                    current = None
                if current is None:
                    current = {"__key__": key, "__url__": url}
                handle = archive.extractfile(member)
                current[extension.lower()] = handle.read() if handle is not None else b""
    except (tarfile.TarError, EOFError, OSError, ValueError) as error:
        # A sample whose members were all read before the damage is kept; a partial one is dropped.
        if current is not None and _is_complete(current):
            yield current
            last_key = current["__key__"]
            current = None
        partial = current is not None
        raise _ShardBroken(url, current["__key__"] if partial else last_key, partial, error) from error
    if current is not None:
        yield current


class ShardDataset(IterableDataset):
    """Stream and decode the samples of fergen shards, split by rank, then by DataLoader worker.

    Args:
        urls: shard paths, brace patterns (``out/shard-{000000..000009}.tar``),
            ``::``-separated lists, fsspec URLs (``s3://bucket/shard-000000.tar``,
            opened with ``fsspec.open``), or a finished output folder (its manifest's shards).
        shuffle: shuffle buffer size in samples; 0 keeps the stored order. With a
            buffer, the shard order is also shuffled each epoch.
        seed: seed of the shard order and of the buffer (with ``epoch``, rank and worker).
        epoch: the epoch whose order is used; change it later with :meth:`set_epoch`.
        rank, world_size: this process's place in distributed training (default:
            ``torch.distributed`` when initialised, else the ``RANK``/``WORLD_SIZE``
            environment variables, else 0 of 1).
        max_errors: damaged samples or shards a reader skips (each logged with the
            shard and key) before it raises; counted per reader and pass.
        storage_options: keyword arguments for ``fsspec.open`` on URLs with a scheme
            (credentials, timeouts).

    Items are the sample dicts of :mod:`fergen.torch.samples`, and ``meta``
    also contains ``key`` and ``url``. Batch them with :func:`fergen.torch.collate`.

    Every rank reads a disjoint part of the samples, and the parts cover every
    sample once. Rank sample counts differ when the shards do not divide evenly;
    ``len(dataset)`` gives this rank's count where the manifests are readable.

    NOTE: a stalled remote read waits as long as the fsspec backend allows.
    Pass a timeout in ``storage_options`` where the backend supports one. A
    truncated local shard ends in a read error, never in a wait.
    """

    def __init__(self, urls: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]], shuffle: int = 0,
                 seed: int = 0, epoch: int = 0, rank: Optional[int] = None, world_size: Optional[int] = None,
                 max_errors: int = 10, storage_options: Optional[Mapping[str, Any]] = None):
        if isinstance(shuffle, bool) or not isinstance(shuffle, int) or shuffle < 0:
            raise ValueError(f"shuffle must be a buffer size >= 0 (samples), got {shuffle!r}")
        if isinstance(max_errors, bool) or not isinstance(max_errors, int) or max_errors < 0:
            raise ValueError(f"max_errors must be an integer >= 0, got {max_errors!r}")
        self.shards = expand_urls(urls)
        missing = [url for url in self.shards if (path := _local_path(url)) is not None and not path.is_file()]
        if missing:
            raise ShardError(f"shard {missing[0]} not found ({len(missing)} of {len(self.shards)} local shards "
                             "are missing). Check the path or brace pattern, e.g. out/shard-{000000..000009}.tar, "
                             "or pass the output folder.")
        catalog = read_catalog(self.shards)
        self.class_names = catalog.class_names
        self.recipe_sha256 = catalog.recipe_sha256
        self._counts = catalog.counts
        self.shuffle = shuffle
        self.seed = seed
        self.max_errors = max_errors
        self.storage_options = dict(storage_options or {})
        self._rank = rank
        self._world_size = world_size
        current_slot(rank, world_size)
        self._epoch = SharedEpoch(epoch)

    @property
    def epoch(self) -> int:
        return self._epoch.get()

    def set_epoch(self, epoch: int) -> None:
        """Use the shard and buffer order of ``epoch``, in this process and in DataLoader workers.

        Call it before iterating the DataLoader for that epoch.
        """
        self._epoch.set(epoch)

    def ordered_shards(self) -> list[str]:
        """Return the shard list of the current epoch: stored order, or a seeded permutation with a buffer."""
        if self.shuffle == 0:
            return list(self.shards)
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, self.epoch])))
        return [self.shards[i] for i in rng.permutation(len(self.shards))]

    def __len__(self) -> int:
        """Return this rank's sample count per epoch, from the manifests next to the shards.

        Raises:
            TypeError: if a shard has no manifest entry (remote shards), as ``len`` does for unsized objects.
        """
        unknown = [url for url in self.shards if url not in self._counts]
        if unknown:
            raise TypeError(f"ShardDataset has no length: {shard_label(unknown[0])} has no manifest.json "
                            "entry beside it")
        slot = current_slot(self._rank, self._world_size)
        plan = plan_reading(self.ordered_shards(), WorkerSlot(slot.rank, slot.world_size, 0, 1))
        total = sum(self._counts[url] for url in plan.shards)
        return len(range(plan.offset, total, plan.stride))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        slot = current_slot(self._rank, self._world_size)
        plan = plan_reading(self.ordered_shards(), slot)
        if plan.stride > 1:
            log.info("rank %d worker %d reads all %d of its shards and keeps one sample in %d, because there "
                     "are fewer shards than readers", slot.rank, slot.worker, len(plan.shards), plan.stride)
        errors = _ErrorBudget(self.max_errors)
        raw = self._kept_samples(plan, errors)
        if self.shuffle > 0:
            seed_sequence = np.random.SeedSequence([self.seed, self.epoch, slot.rank, slot.worker])
            raw = shuffle_buffer(raw, self.shuffle, np.random.Generator(np.random.PCG64(seed_sequence)))
        for sample in raw:
            try:
                yield decode_sample(sample)
            except ShardError as error:
                errors.record(str(error), "skipping the sample")

    def _kept_samples(self, plan: ReadPlan, errors: "_ErrorBudget") -> Iterator[dict[str, Any]]:
        position = 0
        for url in plan.shards:
            count = 0
            try:
                for sample in iter_shard(url, self.storage_options):
                    count += 1
                    if position % plan.stride == plan.offset:
                        yield sample
                    position += 1
            except _ShardBroken as error:
                errors.record(f"{error}. {_VERIFY_HINT}", "skipping the rest of the shard")
                continue
            expected = self._counts.get(url)
            if expected is not None and count != expected:
                errors.record(f"{shard_label(url)}: {count} samples, its manifest lists {expected}. {_VERIFY_HINT}",
                              "continuing with the samples read")

    def __repr__(self) -> str:
        return (f"ShardDataset({len(self.shards)} shards, shuffle={self.shuffle}, seed={self.seed}, "
                f"epoch={self.epoch})")


class _ErrorBudget:
    """Counter of damaged samples and shards that logs each one and raises once there are more than ``limit``."""

    def __init__(self, limit: int):
        self.limit = limit
        self.count = 0

    def record(self, problem: str, consequence: str) -> None:
        """Log ``problem`` with what the reader does about it, or raise ShardError once over the limit."""
        self.count += 1
        if self.count > self.limit:
            raise ShardError(f"{problem} Stopping after {self.count} damaged samples or shards, more than "
                             f"max_errors={self.limit}. Repair the shards or raise max_errors.")
        log.warning("%s: %s", consequence, problem)


def shuffle_buffer(samples: Iterable[Any], size: int, rng: np.random.Generator) -> Iterator[Any]:
    """Shuffle a stream with a buffer of ``size`` items: emit a random buffered item as each new one arrives."""
    buffer: list[Any] = []
    for sample in samples:
        if len(buffer) < size:
            buffer.append(sample)
            continue
        slot = int(rng.integers(size))
        yield buffer[slot]
        buffer[slot] = sample
    rng.shuffle(buffer)
    yield from buffer

