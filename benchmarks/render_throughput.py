"""Measure render throughput at 128x128: render only, with encoding, and end to end with 1 and 2 workers.

Usage:
    python benchmarks/render_throughput.py [--recipe demo] [--samples 2000] [--repeats 5]

Prints a Markdown table (medians over the repeats, plus the ratio of the 2-worker
to the 1-worker end-to-end rate) and the machine it ran on, for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import resource
import statistics
import sys
import tempfile
import time

import cv2
import numpy as np

from fergen.engine import render_to_folder
from fergen.pipeline import Renderer
from fergen.recipe import load_recipe
from fergen.shards import encode_sample


def rate(function, count: int) -> float:
    start = time.perf_counter()
    function()
    return count / (time.perf_counter() - start)


def peak_rss_mib() -> tuple[float, float]:
    """Peak resident memory of this process and of its finished children, in MiB (Linux reports KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="demo", help="recipe path or bundled name")
    parser.add_argument("--samples", type=int, default=2000, help="samples per measurement")
    parser.add_argument("--repeats", type=int, default=5, help="measurements per row (the median is shown)")
    arguments = parser.parse_args()

    recipe = load_recipe(arguments.recipe)
    recipe = recipe.replace(output=dataclasses.replace(recipe.output, samples=arguments.samples,
                                                       samples_per_shard=max(1, arguments.samples // 8)))
    renderer = Renderer(recipe)
    for index in range(50):
        renderer.sample(index)
    count = arguments.samples

    def render_only() -> None:
        for index in range(count):
            renderer.sample(index)

    def with_encoding() -> None:
        for index in range(count):
            encode_sample(renderer.sample(index), recipe.output)

    rows = {"render only, 1 process": [], "render + encode, 1 process": [],
            "end to end (fergen render), 1 worker": [], "end to end (fergen render), 2 workers": []}
    for _ in range(arguments.repeats):
        rows["render only, 1 process"].append(rate(render_only, count))
        rows["render + encode, 1 process"].append(rate(with_encoding, count))
        for workers in (1, 2):
            with tempfile.TemporaryDirectory() as folder:
                key = f"end to end (fergen render), {workers} worker{'s' if workers > 1 else ''}"
                rows[key].append(rate(lambda: render_to_folder(recipe, folder, workers=workers,
                                                               renderer=renderer), count))
    # joblib keeps its worker processes for reuse; stop them so their peak memory is reported.
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)
    own, children = peak_rss_mib()

    print(f"recipe {recipe.name}, {recipe.render.output_size[0]}x{recipe.render.output_size[1]}, "
          f"{count} samples per measurement, median of {arguments.repeats}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs ({platform.processor() or 'unknown'}), "
          f"Python {platform.python_version()}, numpy {np.__version__}, OpenCV {cv2.__version__}")
    print()
    print("| measurement | samples/s (median) | min | max |")
    print("|---|---|---|---|")
    for name, values in rows.items():
        print(f"| {name} | {statistics.median(values):.0f} | {min(values):.0f} | {max(values):.0f} |")
    one = statistics.median(rows["end to end (fergen render), 1 worker"])
    two = statistics.median(rows["end to end (fergen render), 2 workers"])
    print(f"\n2 workers / 1 worker: {two / one:.2f}x")
    print(f"peak RSS: {own:.0f} MiB (main process), {children:.0f} MiB (largest worker process)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
