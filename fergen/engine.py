"""Render a recipe into a folder of shards with joblib processes or a Dask cluster.

Each shard is rendered by one task from the recipe alone, written
atomically and recorded in ``OUT/.fergen/``. A rerun skips shards whose
record and checksum match and renders the rest, then rewrites the manifest.
Shard bytes depend only on the recipe, never on the worker count.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Optional

import numpy as np

from . import __version__
from .errors import MissingDependencyError, ShardError
from .pipeline import Renderer
from .recipe import Recipe
from .shards import (MANIFEST, ShardRecord, atomic_write_bytes, encode_sample, file_sha256, finished_record,
                     load_all_records, merge_histograms, read_manifest, remove_stale_temporaries, save_shard_record,
                     shard_name, shard_range, state_path, write_shard)

log = logging.getLogger(__name__)

Backend = Literal["joblib", "dask"]
# Called with the number of samples just finished (or skipped as already done).
ProgressCallback = Callable[[int], None]


@dataclass
class RenderSummary:
    """Summary of a render run, for the CLI and for tests."""

    out: Path
    samples: int
    shards: int
    rendered_shards: int
    reused_shards: int
    seconds: float
    histogram: dict[str, int]
    skipped_faces: dict[str, int]
    unmatched_files: int
    unreadable_backgrounds: dict[str, int] = field(default_factory=dict)

    @property
    def samples_per_second(self) -> float:
        rendered = self.samples * self.rendered_shards / max(1, self.shards)
        return rendered / self.seconds if self.seconds > 0 else 0.0


def render_shard(renderer: Renderer, out: Path, shard: int,
                 progress: Optional[ProgressCallback] = None) -> ShardRecord:
    """Render, encode and write one shard, then record it; returns its record."""
    recipe = renderer.recipe
    output = recipe.output
    indices = shard_range(shard, output.samples, output.samples_per_shard)
    histogram: Counter = Counter()
    encoded = []
    before = Counter(renderer.unreadable_backgrounds)
    for index in indices:
        sample = renderer.sample(index, epoch=0)
        histogram[renderer.class_names[sample.label]] += 1
        encoded.append((index, encode_sample(sample, output)))
        if progress is not None:
            progress(1)
    name = shard_name(output.shard_prefix, shard)
    path = out / name
    write_shard(path, encoded)
    unreadable = Counter(renderer.unreadable_backgrounds)
    unreadable.subtract(before)
    record = ShardRecord(shard=shard, name=name, sha256=file_sha256(path), size=path.stat().st_size,
                         samples=len(indices), first_index=indices.start, histogram=dict(sorted(histogram.items())),
                         recipe_sha256=recipe.sha256,
                         unreadable_backgrounds={k: v for k, v in sorted(unreadable.items()) if v > 0},
                         data_fingerprint=renderer.data_fingerprint)
    save_shard_record(out, record)
    return record


# Renderers already unpickled in this worker process, so background photos decoded for one
# shard stay cached for the next shard of the same run.
_WORKER_RENDERERS: dict[tuple[str, str, str], Renderer] = {}


def _render_shard_task(renderer: Renderer, out: str, shard: int) -> dict[str, Any]:
    if not logging.getLogger().handlers:
        # Worker processes start without the CLI's logging setup; use the same format for warnings.
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    key = (renderer.recipe.sha256, renderer.faces.fingerprint, str(renderer.data_root))
    cached = _WORKER_RENDERERS.setdefault(key, renderer)
    if len(_WORKER_RENDERERS) > 4:
        _WORKER_RENDERERS.clear()
        _WORKER_RENDERERS[key] = cached
    return render_shard(cached, Path(out), shard).to_dict()


def check_output_folder(out: Path, recipe: Recipe, overwrite: bool) -> None:
    """Raise :class:`ShardError` if ``out`` contains shards of another recipe, unless ``overwrite`` is set.

    Both the manifest and the per-shard records are checked, so a run that was
    interrupted before writing its manifest is detected too. With
    ``overwrite``, the other recipe's shards, records and manifest are deleted.
    """
    foreign: dict[str, str] = {}
    manifest_path = out / MANIFEST
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text())
        except ValueError:
            manifest = {}
        if manifest.get("recipe_sha256") != recipe.sha256:
            foreign[MANIFEST] = str(manifest.get("recipe_sha256"))
            for entry in manifest.get("shards", []):
                foreign[entry["name"]] = str(manifest.get("recipe_sha256"))
    for record in load_all_records(out):
        if record.recipe_sha256 != recipe.sha256:
            foreign[record.name] = record.recipe_sha256
    if not foreign:
        return
    if not overwrite:
        other = sorted(set(foreign.values()))[0]
        raise ShardError(f"{out} contains shards of another recipe (sha256 {other[:12]}..., this recipe "
                         f"{recipe.sha256[:12]}...). Use a new output folder, or pass --overwrite to replace them.")
    log.info("deleting %d files of another recipe in %s (--overwrite)", len(foreign), out)
    for name in foreign:
        (out / name).unlink(missing_ok=True)
        if name != MANIFEST:
            state_path(out, name).unlink(missing_ok=True)


def render_to_folder(recipe: Recipe, out: str | Path, data_root: str | Path | None = None, workers: int = 1,
                     backend: Backend = "joblib", scheduler: Optional[str] = None, overwrite: bool = False,
                     progress: Optional[ProgressCallback] = None, cache_dir: Optional[Path] = None,
                     renderer: Optional[Renderer] = None) -> RenderSummary:
    """Render every shard of ``recipe`` into ``out`` and write ``manifest.json``.

    Args:
        recipe: the validated recipe.
        out: output folder (created if missing).
        data_root: folder relative recipe paths resolve against.
        workers: processes (joblib) or local Dask workers; 1 renders in this process.
        backend: ``joblib`` or ``dask``.
        scheduler: Dask scheduler address (``tcp://host:8786``); default: a LocalCluster.
        overwrite: allow replacing the shards of a different recipe in ``out``.
        progress: called with the number of samples finished.
        cache_dir: face cache folder.
        renderer: a prepared renderer to reuse (its recipe must be ``recipe``).

    Returns:
        A :class:`RenderSummary`.
    """
    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    check_output_folder(out, recipe, overwrite)
    removed = remove_stale_temporaries(out)
    if removed:
        log.info("removed %d temporary files left by an interrupted run", removed)
    if renderer is None:
        renderer = Renderer(recipe, data_root, cache_dir=cache_dir, workers=workers)
    elif renderer.recipe.sha256 != recipe.sha256:
        raise ValueError("the renderer was built for another recipe")

    records: dict[int, ShardRecord] = {}
    pending = []
    changed = [record.name for record in load_all_records(out)
               if record.recipe_sha256 == recipe.sha256 and record.data_fingerprint != renderer.data_fingerprint]
    if changed:
        log.warning("the faces or backgrounds changed since %d shard(s) in %s were rendered; rendering them again",
                    len(changed), out)
    for shard in range(recipe.shard_count):
        record = finished_record(out, shard_name(recipe.output.shard_prefix, shard), renderer.data_fingerprint)
        if record is None:
            pending.append(shard)
        else:
            records[shard] = record
            if progress is not None:
                progress(record.samples)
    if records:
        log.info("reusing %d finished shards; rendering %d", len(records), len(pending))

    if pending:
        if backend == "dask":
            _run_dask(renderer, out, pending, workers, scheduler, records, progress)
        elif workers <= 1:
            for shard in pending:
                records[shard] = render_shard(renderer, out, shard, progress)
        else:
            _run_joblib(renderer, out, pending, workers, records, progress)

    ordered = [records[shard] for shard in range(recipe.shard_count)]
    unreadable: Counter = Counter()
    for record in ordered:
        unreadable.update(record.unreadable_backgrounds)
    write_manifest(out, recipe, renderer, ordered, dict(unreadable))
    return RenderSummary(out=out, samples=recipe.output.samples, shards=recipe.shard_count,
                         rendered_shards=len(pending), reused_shards=recipe.shard_count - len(pending),
                         seconds=time.perf_counter() - start, histogram=merge_histograms(ordered),
                         skipped_faces=dict(renderer.faces.skipped), unmatched_files=len(renderer.faces.unmatched),
                         unreadable_backgrounds=dict(unreadable))


def _run_joblib(renderer: Renderer, out: Path, pending: list[int], workers: int,
                records: dict[int, ShardRecord], progress: Optional[ProgressCallback]) -> None:
    from joblib import Parallel, delayed

    samples = renderer.recipe.output
    # Large face tables are memory-mapped into the workers instead of being copied per task.
    parallel = Parallel(n_jobs=workers, backend="loky", return_as="generator_unordered", max_nbytes="1M")
    tasks = (delayed(_render_shard_task)(renderer, str(out), shard) for shard in pending)
    for result in parallel(tasks):
        record = ShardRecord(**result)
        records[record.shard] = record
        if progress is not None:
            progress(len(shard_range(record.shard, samples.samples, samples.samples_per_shard)))


def _run_dask(renderer: Renderer, out: Path, pending: list[int], workers: int, scheduler: Optional[str],
              records: dict[int, ShardRecord], progress: Optional[ProgressCallback]) -> None:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise MissingDependencyError("the dask backend needs distributed: pip install 'fergen[dask]'") from None
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                               dashboard_address=None)
    client = Client(scheduler or cluster)
    try:
        shared = client.scatter(renderer, broadcast=True)
        futures = [client.submit(_render_shard_task, shared, str(out), shard, pure=False) for shard in pending]
        for future in as_completed(futures):
            record = ShardRecord(**future.result())
            records[record.shard] = record
            if progress is not None:
                progress(record.samples)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def write_manifest(out: Path, recipe: Recipe, renderer: Renderer, records: list[ShardRecord],
                   unreadable: dict[str, int]) -> dict[str, Any]:
    """Write ``OUT/manifest.json`` (sorted keys, no timestamps, so it is reproducible too)."""
    faces = renderer.faces
    manifest = {
        "format": "fergen-shards", "fergen_version": __version__,
        "recipe": recipe.to_dict(), "recipe_sha256": recipe.sha256,
        "samples": recipe.output.samples, "samples_per_shard": recipe.output.samples_per_shard,
        "shard_count": len(records), "class_names": list(renderer.class_names),
        "class_histogram": merge_histograms(records),
        "shards": [{"name": r.name, "sha256": r.sha256, "size": r.size, "samples": r.samples,
                    "first_index": r.first_index} for r in records],
        "faces": {"count": len(faces), "fingerprint": faces.fingerprint,
                  "per_class": {name: int(np.sum(faces.labels == i)) for i, name in enumerate(faces.class_names)},
                  "subjects": len(set(faces.subjects)), "skipped": dict(sorted(faces.skipped.items())),
                  "skipped_ids": [list(item) for item in faces.skipped_ids],
                  "unmatched_files": faces.unmatched},
        "backgrounds": {"count": len(renderer.backgrounds), "fingerprint": renderer.backgrounds.fingerprint(),
                        "unreadable": unreadable},
    }
    atomic_write_bytes(out / MANIFEST, (json.dumps(manifest, sort_keys=True, indent=1) + "\n").encode("utf-8"))
    return manifest


@dataclass
class VerifyReport:
    """Result of :func:`verify_folder`; ``problems`` is empty when the folder is intact."""

    out: Path
    shards: int
    samples: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_folder(out: str | Path, deep: bool = False) -> VerifyReport:
    """Check every shard listed in the manifest: presence, size, sha256 and members.

    With ``deep``, every image member is also decoded.
    """
    import tarfile

    from .imageio import decode_image_bytes

    out = Path(out)
    manifest = read_manifest(out)
    problems = []
    total = 0
    composite = manifest["recipe"]["output"]["composite_format"]
    expected_members = {"cls", "face.png", composite, "json", "mask.png"}
    for entry in manifest["shards"]:
        path = out / entry["name"]
        if not path.is_file():
            problems.append(f"{entry['name']}: missing")
            continue
        if path.stat().st_size != entry["size"]:
            problems.append(f"{entry['name']}: size {path.stat().st_size} != {entry['size']} in the manifest")
            continue
        if file_sha256(path) != entry["sha256"]:
            problems.append(f"{entry['name']}: sha256 differs from the manifest")
            continue
        keys: dict[str, set[str]] = {}
        try:
            with tarfile.open(path) as archive:
                for member in archive:
                    key, _, extension = member.name.partition(".")
                    keys.setdefault(key, set()).add(extension)
                    if deep and extension.endswith(("png", "jpg")):
                        decode_image_bytes(archive.extractfile(member).read(), f"{entry['name']}:{member.name}")
        except (tarfile.TarError, OSError, ValueError) as error:
            problems.append(f"{entry['name']}: unreadable tar: {error}")
            continue
        if len(keys) != entry["samples"]:
            problems.append(f"{entry['name']}: {len(keys)} samples, manifest says {entry['samples']}")
        for key, extensions in sorted(keys.items()):
            if extensions != expected_members:
                problems.append(f"{entry['name']}: sample {key} has members {sorted(extensions)}, "
                                f"expected {sorted(expected_members)}")
                break
        total += len(keys)
    if total != manifest["samples"] and not problems:
        problems.append(f"{total} samples in the shards, manifest says {manifest['samples']}")
    listed = {entry["name"] for entry in manifest["shards"]}
    for path in sorted(out.glob("*.tar")):
        if path.name not in listed:
            problems.append(f"{path.name}: not listed in the manifest (left by another run?); delete it, or render "
                            "again into a new folder")
    return VerifyReport(out=out, shards=len(manifest["shards"]), samples=total, problems=problems)
