"""Measure the torch integration: DataLoader rates of both datasets and BatchRenderer rates per device.

Rows:

- ``RenderDataset`` and ``ShardDataset`` through a ``DataLoader`` (batch 64,
  ``collate``) with 0, 1 and 2 workers. Workers are persistent and one
  warm-up epoch runs first, so the rates are steady-state and leave out
  worker start-up;
- ``BatchRenderer`` at ``--batch`` samples, on the CPU and, when
  ``torch.cuda.is_available()``, on CUDA. ``render`` runs alone on inputs
  already on the device. ``render_samples`` runs end to end, so it also draws
  params and crops backgrounds on the CPU with ``gather_inputs``.

Usage:
    python benchmarks/torch_throughput.py [--recipe demo] [--samples 1024] [--batch 256] [--repeats 5] [--threads 0]

Prints Markdown table rows (medians over the repeats) and the machine they ran on, for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from fergen.engine import render_to_folder
from fergen.pipeline import Renderer
from fergen.recipe import load_recipe
from fergen.torch import BatchRenderer, ParamBatch, RenderDataset, ShardDataset, collate, gather_inputs

LOADER_BATCH = 64


def median_rate(function: Callable[[], int], repeats: int, synchronize: Callable[[], None] = lambda: None) -> float:
    """Return the median of ``repeats`` rates (items per second); ``function`` returns its item count."""
    rates = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        count = function()
        synchronize()
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def loader_rate(dataset, workers: int, repeats: int) -> float:
    """Return the median samples/s of full passes over a DataLoader, after one warm-up pass."""
    loader = DataLoader(dataset, batch_size=LOADER_BATCH, num_workers=workers, collate_fn=collate,
                        persistent_workers=workers > 0)

    def one_pass() -> int:
        return sum(len(batch["label"]) for batch in loader)

    one_pass()
    return median_rate(one_pass, repeats)


def renderer_rates(renderer: Renderer, device: str, batch: int, repeats: int) -> tuple[float, float]:
    """Return (render-only, end-to-end) samples/s of BatchRenderer on ``device``."""
    synchronize = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    batch_renderer = BatchRenderer(device=device)
    inputs = gather_inputs(renderer, range(batch))
    params = ParamBatch.from_params(inputs.params, device)
    faces, masks = inputs.faces.to(device), inputs.masks.to(device)
    backgrounds, lightness = inputs.backgrounds.to(device), inputs.face_lightness.to(device)

    def render_only() -> int:
        batch_renderer.render(faces, masks, backgrounds, params, face_lightness=lightness)
        return batch

    start_index = [0]

    def end_to_end() -> int:
        start_index[0] += batch
        indices = range(start_index[0], start_index[0] + batch)
        batch_renderer.render_samples(renderer, indices, with_meta=False)
        return batch

    render_only()
    end_to_end()
    return median_rate(render_only, repeats, synchronize), median_rate(end_to_end, repeats, synchronize)


def machine() -> str:
    line = (f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"torch {torch.__version__} ({torch.get_num_threads()} intra-op threads), numpy {np.__version__}, "
            f"OpenCV {cv2.__version__}")
    if torch.cuda.is_available():
        line += f", GPU {torch.cuda.get_device_name(0)}"
    else:
        line += ", no GPU"
    # Other processes on a shared machine slow every row; the load average records how busy it was.
    return line + ", load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="demo", help="recipe path or bundled name")
    parser.add_argument("--samples", type=int, default=1024, help="samples per DataLoader pass")
    parser.add_argument("--batch", type=int, default=256, help="BatchRenderer batch size")
    parser.add_argument("--repeats", type=int, default=5, help="measurements per row (the median is shown)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads in the main process (0: torch's default)")
    parser.add_argument("--skip-loaders", action="store_true", help="measure BatchRenderer only")
    arguments = parser.parse_args()
    if arguments.threads > 0:
        torch.set_num_threads(arguments.threads)

    recipe = load_recipe(arguments.recipe)
    recipe = recipe.replace(output=dataclasses.replace(recipe.output, samples=arguments.samples,
                                                       samples_per_shard=max(1, arguments.samples // 8)))
    renderer = Renderer(recipe)
    height, width = recipe.render.output_size
    print(f"recipe {recipe.name} ({recipe.sha256[:12]}), {height}x{width}, {arguments.samples} samples a pass, "
          f"median of {arguments.repeats}")
    print(f"machine: {machine()}")
    print()
    print("| measurement | workers or device | samples/s |")
    print("|---|---|---|")

    if not arguments.skip_loaders:
        dataset = RenderDataset(recipe, renderer=renderer)
        for workers in (0, 1, 2):
            print(f"| RenderDataset, DataLoader batch {LOADER_BATCH} | {workers} workers | "
                  f"{loader_rate(dataset, workers, arguments.repeats):,.0f} |", flush=True)
        with tempfile.TemporaryDirectory() as folder:
            render_to_folder(recipe, Path(folder), renderer=renderer)
            shards = ShardDataset(folder, shuffle=1000)
            composite = recipe.output.composite_format
            for workers in (0, 1, 2):
                print(f"| ShardDataset ({composite} composite), DataLoader batch {LOADER_BATCH} | {workers} workers | "
                      f"{loader_rate(shards, workers, arguments.repeats):,.0f} |", flush=True)

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        render_only, end_to_end = renderer_rates(renderer, device, arguments.batch, arguments.repeats)
        print(f"| BatchRenderer.render, batch {arguments.batch}, inputs on the device | {device} | "
              f"{render_only:,.0f} |")
        print(f"| BatchRenderer.render_samples, batch {arguments.batch}, CPU gather included | {device} | "
              f"{end_to_end:,.0f} |", flush=True)

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print()
    print(f"peak resident memory of the main process: {own:,.0f} MiB")
    if torch.cuda.is_available():
        print(f"peak CUDA memory allocated: {torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB")


if __name__ == "__main__":
    main()
