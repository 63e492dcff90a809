"""Time loading a cached face index of 100,000 faces (and, optionally, listing a tree of files).

The index is synthetic but shaped like a CK+ index: relative image and
landmark paths, subject, label and code strings, and four metadata columns.
It is saved with :meth:`FaceIndex.save`, then loaded ``--repeats`` times, and
the median is reported. ``--tree N`` also writes N empty files and times
:func:`list_files` plus the listing fingerprint, the work a second run does
before it finds the cached index.

Usage:
    python benchmarks/index_load.py [--faces 100000] [--repeats 7] [--tree 0]

The last line of the output is a Markdown table row for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from fergen.faces.index import FaceIndex, IndexBuilder, list_files
from fergen.faces.labels import CANONICAL_LABELS


def synthetic_index(faces: int, seed: int = 0) -> FaceIndex:
    """Return an index of ``faces`` CK+-like faces, 20 frames a sequence, 10 sequences a subject."""
    rng = np.random.default_rng(seed)
    builder = IndexBuilder("synthetic")
    for number in range(faces):
        subject = f"S{number // 200:04d}"
        sequence = f"{(number // 20) % 10:03d}"
        frame = number % 20 + 1
        stem = f"{subject}/{sequence}/{subject}_{sequence}_{frame:08d}"
        code = int(rng.integers(len(CANONICAL_LABELS)))
        builder.add(f"cohn-kanade-images/{stem}.png", subject, CANONICAL_LABELS[code], str(code),
                    path=f"cohn-kanade-images/{stem}.png", mask_path=f"Landmarks/{stem}_landmarks.txt",
                    sequence=sequence, frame=frame, position=frame - 1, from_end=20 - frame)
    return builder.build()


def time_call(function, repeats: int) -> tuple[float, object]:
    """Return the median wall time in seconds of ``repeats`` calls, and the last result."""
    times = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=100_000, help="faces in the synthetic index")
    parser.add_argument("--repeats", type=int, default=7, help="number of timed loads, of which the median is reported")
    parser.add_argument("--tree", type=int, default=0, help="also time listing a tree of this many empty files")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "index.npz"
        start = time.perf_counter()
        synthetic_index(arguments.faces).save(path)
        build_seconds = time.perf_counter() - start
        size_mb = path.stat().st_size / 2**20

        load_seconds, index = time_call(lambda: FaceIndex.load(path, root="/data/CK+"), arguments.repeats)
        records_seconds, records = time_call(lambda: FaceIndex.load(path, root="/data/CK+").records(),
                                             arguments.repeats)
        if len(index) != arguments.faces or len(records) != arguments.faces:
            raise RuntimeError(f"loaded {len(index)} faces and {len(records)} records, expected {arguments.faces}")
        print(f"built and saved {arguments.faces} faces in {build_seconds:.2f} s ({size_mb:.1f} MiB)")
        print(f"load: median {load_seconds * 1000:.1f} ms of {arguments.repeats}")
        print(f"load and build every FaceRecord: median {records_seconds * 1000:.1f} ms")

        listing_text = "-"
        if arguments.tree:
            tree = Path(folder) / "tree"
            for number in range(arguments.tree):
                directory = tree / f"S{number // 1000:04d}"
                if number % 1000 == 0:
                    directory.mkdir(parents=True)
                (directory / f"{number:08d}.png").touch()
            listing_seconds, _ = time_call(lambda: list_files(tree, ["."]).fingerprint(), arguments.repeats)
            listing_text = f"{listing_seconds * 1000:.0f} ms for {arguments.tree} files"
            print(f"list and fingerprint: median {listing_text}")

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"| face index load | {arguments.faces} faces, {size_mb:.1f} MiB npz | {load_seconds * 1000:.0f} ms "
          f"(all records {records_seconds * 1000:.0f} ms) | listing {listing_text} | {machine} |")


if __name__ == "__main__":
    main()
