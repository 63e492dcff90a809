"""Measure training throughput and peak memory of each fergen_train model variant.

Each (variant, device, precision) runs in its own subprocess, so the peak
resident memory of one run does not carry over to the next. A run builds the
full-size model of the variant, runs ``--warmup`` untimed training steps
(forward, loss, backward, Adam step) on random inputs, then times ``--steps``
more and reports the median. Data loading and rendering are not included.

Examples::

    python benchmarks/train_throughput.py                      # CPU, fp32, all variants
    python benchmarks/train_throughput.py --device cuda        # CUDA, fp32 and bf16
    python benchmarks/train_throughput.py --json results.json

Peak memory is the process's peak resident set size on the CPU (it includes
the Python interpreter and torch, about 0.3 GiB) and
``torch.cuda.max_memory_allocated`` on CUDA.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

VARIANTS = ("feratt-cls", "feratt-rep-cls", "baseline")


def measure(variant: str, device: str, precision: str, batch_size: int, input_size: int, warmup: int,
            steps: int, classes: int, threads: int | None) -> dict:
    """Time ``steps`` training steps of one variant and return the measurements."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)

    from fergen_train.config import LossConfig, ModelConfig, RuntimeConfig
    from fergen_train.engine import resolve_runtime
    from fergen_train.losses import FERAttLoss
    from fergen_train.models import build_model

    runtime = resolve_runtime(RuntimeConfig(device=device, amp="bf16" if precision == "bf16" else "off"))
    config = ModelConfig(variant=variant, input_size=(input_size, input_size))
    model = build_model(config, classes, load_weights=False)
    memory_format = torch.channels_last if runtime.channels_last else torch.contiguous_format
    model = model.to(runtime.device, memory_format=memory_format).train()
    criterion = FERAttLoss(LossConfig(), variant, classes, config.representation_dim).to(runtime.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    generator = torch.Generator().manual_seed(0)
    batch = {
        "composite": torch.rand(batch_size, 3, input_size, input_size, generator=generator),
        "target": torch.rand(batch_size, 3, input_size, input_size, generator=generator),
        "label": torch.randint(0, classes, (batch_size,), generator=generator),
    }
    batch = {key: value.to(runtime.device) for key, value in batch.items()}
    batch["composite"] = batch["composite"].contiguous(memory_format=memory_format)

    def step() -> None:
        with runtime.autocast():
            output = model(batch["composite"])
        loss = criterion(output, batch).total
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    cuda = runtime.device.type == "cuda"
    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    durations = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        durations.append(time.perf_counter() - started)

    median = statistics.median(durations)
    if cuda:
        peak_bytes = torch.cuda.max_memory_allocated()
        memory_kind = "cuda max_memory_allocated"
    else:
        # ru_maxrss is in KiB on Linux.
        peak_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        memory_kind = "peak RSS"
    return {
        "variant": variant,
        "device": str(runtime.device),
        "precision": precision,
        "batch_size": batch_size,
        "input_size": input_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": steps,
        "median_step_seconds": median,
        "samples_per_second": batch_size / median,
        "peak_memory_gib": peak_bytes / 2**30,
        "memory_kind": memory_kind,
        "torch_threads": torch.get_num_threads(),
    }


def machine_description() -> dict:
    import torch

    description = {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
    }
    if torch.cuda.is_available():
        description["gpu"] = torch.cuda.get_device_name(0)
    return description


def format_table(results: list[dict]) -> str:
    lines = [
        "| variant | device | precision | threads | batch | input | samples/s | median step (s) | peak memory (GiB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in results:
        lines.append(
            f"| {row['variant']} | {row['device']} | {row['precision']} | {row['torch_threads']} | {row['batch_size']} | "
            f"{row['input_size']}x{row['input_size']} | {row['samples_per_second']:.2f} | "
            f"{row['median_step_seconds']:.3f} | {row['peak_memory_gib']:.2f} ({row['memory_kind']}) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"),
                        help="default: fp32 on the CPU, fp32 and bf16 on CUDA")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--input-size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before timing")
    parser.add_argument("--steps", type=int, default=5, help="timed steps; the median is reported")
    parser.add_argument("--classes", type=int, default=7)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--json", help="also write the results and the machine description to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        result = measure(args.variants[0], args.device, args.precision, args.batch_size, args.input_size,
                         args.warmup, args.steps, args.classes, args.threads)
        print(json.dumps(result))
        return

    precisions = args.precisions or (["fp32", "bf16"] if args.device == "cuda" else ["fp32"])
    results = []
    for variant in args.variants:
        for precision in precisions:
            command = [
                sys.executable, __file__, "--worker", "--variants", variant, "--device", args.device,
                "--precision", precision, "--batch-size", str(args.batch_size), "--input-size", str(args.input_size),
                "--warmup", str(args.warmup), "--steps", str(args.steps), "--classes", str(args.classes),
            ]
            if args.threads is not None:
                command += ["--threads", str(args.threads)]
            completed = subprocess.run(command, capture_output=True, text=True, check=True)
            results.append(json.loads(completed.stdout.strip().splitlines()[-1]))
            print(f"done: {variant} {precision}", file=sys.stderr)

    machine = machine_description()
    print("command:", " ".join([os.path.basename(sys.executable)] + sys.argv))
    print("machine:", json.dumps(machine))
    print(format_table(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"machine": machine, "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
