"""WebDataset tar shards: encoding, atomic writing, per-shard state and the manifest.

Shard ``k`` contains the samples with global indices ``[k * S, (k + 1) * S)``,
so any engine can render any shard alone. Members of sample ``000000042``:

- ``000000042.cls``: the class id as ASCII digits;
- ``000000042.face.png``: the target (face times mask), RGB;
- ``000000042.jpg`` or ``.png``: the composite, RGB;
- ``000000042.json``: metadata (ids, file names, every sampled parameter, theta);
- ``000000042.mask.png``: the mask, grey.

Members are sorted by name, owned by uid 0 with an empty user name and a
fixed mtime, so equal samples give byte-identical shards.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

from .errors import ShardError
from .imageio import encode_jpeg, encode_png
from .recipe import OutputConfig
from .render import Sample

KEY_DIGITS = 9
# 2000-01-01T00:00:00Z: a fixed member mtime keeps shard bytes independent of when they were written.
MEMBER_MTIME = 946684800
STATE_DIR = ".fergen"
MANIFEST = "manifest.json"
_HASH_CHUNK = 1 << 20


def sample_key(index: int) -> str:
    """Return the WebDataset key of a global sample index (zero-padded, no dots)."""
    return f"{index:0{KEY_DIGITS}d}"


def shard_name(prefix: str, shard: int) -> str:
    return f"{prefix}-{shard:06d}.tar"


def shard_range(shard: int, samples: int, per_shard: int) -> range:
    """Return the global sample indices of ``shard``."""
    return range(shard * per_shard, min(samples, (shard + 1) * per_shard))


def encode_sample(sample: Sample, output: OutputConfig) -> dict[str, bytes]:
    """Encode a sample into WebDataset members (extension -> bytes)."""
    if output.composite_format == "jpg":
        composite = encode_jpeg(sample.composite, output.jpeg_quality)
    else:
        composite = encode_png(sample.composite, output.png_compression)
    metadata = json.dumps(sample.metadata, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return {
        "cls": str(int(sample.label)).encode("ascii"),
        "face.png": encode_png(sample.target, output.png_compression),
        output.composite_format: composite,
        "json": metadata,
        "mask.png": encode_png(sample.mask, output.png_compression),
    }


def _tar_member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = MEMBER_MTIME
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def fsync_directory(path: Path) -> None:
    """Flush a folder's entries (a rename) to disk where the platform allows it."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary name, fsync it, then rename it to ``path``."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    fsync_directory(path.parent)


def write_shard(path: Path, samples: Iterable[tuple[int, dict[str, bytes]]]) -> None:
    """Write encoded samples as a tar shard, atomically.

    The tar is built under a temporary name in the same folder, flushed to
    disk and renamed, so an interrupted run never leaves a half-written shard
    under the final name.
    """
    members = []
    for index, encoded in samples:
        key = sample_key(index)
        members.extend((f"{key}.{extension}", data) for extension, data in encoded.items())
    members.sort(key=lambda member: member[0])
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            with tarfile.open(fileobj=handle, mode="w", format=tarfile.USTAR_FORMAT) as archive:
                for name, data in members:
                    archive.addfile(_tar_member(name, len(data)), io.BytesIO(data))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    fsync_directory(path.parent)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class ShardRecord:
    """Record of one finished shard (counts, checksum, inputs), stored beside it so a rerun can trust it."""

    shard: int
    name: str
    sha256: str
    size: int
    samples: int
    first_index: int
    histogram: dict[str, int]
    recipe_sha256: str
    unreadable_backgrounds: dict[str, int]
    #: Fingerprint of the recipe, the prepared faces and the background files the shard was rendered from.
    data_fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def state_path(out: Path, name: str) -> Path:
    return out / STATE_DIR / f"{name}.json"


def save_shard_record(out: Path, record: ShardRecord) -> None:
    (out / STATE_DIR).mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(state_path(out, record.name), json.dumps(record.to_dict(), sort_keys=True).encode())


def load_shard_record(out: Path, name: str) -> Optional[ShardRecord]:
    path = state_path(out, name)
    try:
        return ShardRecord(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def finished_record(out: Path, name: str, data_fingerprint: str) -> Optional[ShardRecord]:
    """Return the record of a shard that is complete and unchanged, else ``None``.

    A shard counts as finished when its state file names the same recipe and
    input data (``data_fingerprint``) and the tar's size and sha256 match what
    was recorded. Changed faces or backgrounds therefore re-render the shard.
    """
    record = load_shard_record(out, name)
    path = out / name
    if record is None or record.data_fingerprint != data_fingerprint or not path.is_file():
        return None
    if path.stat().st_size != record.size or file_sha256(path) != record.sha256:
        return None
    return record


def load_all_records(out: Path) -> list[ShardRecord]:
    """Return every readable shard record in ``OUT/.fergen`` (records of any recipe)."""
    folder = out / STATE_DIR
    if not folder.is_dir():
        return []
    records = []
    for path in sorted(folder.glob("*.json")):
        record = load_shard_record(out, path.name[:-len(".json")])
        if record is not None:
            records.append(record)
    return records


def remove_stale_temporaries(out: Path) -> int:
    """Delete temporary files left by an interrupted run; return how many."""
    count = 0
    for folder in (out, out / STATE_DIR):
        if folder.is_dir():
            for path in folder.glob(".*.tmp-*"):
                path.unlink(missing_ok=True)
                count += 1
    return count


def merge_histograms(records: Iterable[ShardRecord]) -> dict[str, int]:
    total: Counter = Counter()
    for record in records:
        total.update(record.histogram)
    return dict(sorted(total.items()))


def read_manifest(out: Path) -> dict[str, Any]:
    """Read ``OUT/manifest.json``.

    Raises:
        ShardError: if it is missing or not valid JSON.
    """
    path = out / MANIFEST
    if not path.is_file():
        raise ShardError(f"{path} not found: {out} is not a finished fergen output folder. "
                         "Run 'fergen render RECIPE -o OUT' (it resumes an interrupted run).")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ShardError(f"{path} is not valid JSON ({error}); rerun 'fergen render' to rewrite it.") from None
