"""The ``fergen-train`` command line: fit, evaluate and predict."""

from __future__ import annotations

import csv
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch

from fergen.cli import FergenGroup
from fergen.errors import DataError
from fergen.imageio import read_image
from fergen_train.checkpoint import CheckpointError, checkpoint_config, load_checkpoint, model_from_checkpoint
from fergen_train.config import (
    ConfigError,
    DataSourceConfig,
    RuntimeConfig,
    check_class_count,
    find_config,
    load_config,
    replace_section,
)
from fergen_train.data import (
    label_mapping,
    load_training_data,
    open_real_faces,
    open_source,
    parse_data_argument,
    remap_labels,
)
from fergen_train.engine import BatchError, Runtime, evaluate, resolve_runtime
from fergen_train.images import collect_image_paths, crop_square, face_crop_box, to_model_input
from fergen_train.losses import FERAttLoss
from fergen_train.metrics import classification_report
from fergen_train.models import EncoderWeightsError
from fergen_train.plots import plot_attention_grid, plot_confusion_matrix
from fergen_train.trainer import fit, make_loader

logger = logging.getLogger(__name__)

#: Errors caused by user input besides fergen's FergenError; the CLI prints
#: their message without a traceback, as ``fergen`` does for FergenError.
USER_ERRORS = (ConfigError, CheckpointError, BatchError, EncoderWeightsError,
               FileNotFoundError, FileExistsError, FloatingPointError)

#: Sample ``meta`` keys that evaluate keeps to trace each row of predictions.csv to its source.
#: Real photos have ``path``, ``face_id`` and ``face_found``; renders have ``key``
#: and ``face_id``, and samples read from shards also the shard's ``url``.
SAMPLE_META_KEYS = ("path", "url", "key", "face_id", "face_found")

#: Photos named one by one in the evaluate log when no face is found in them; the rest are counted.
NO_FACE_WARNINGS = 10


def _progress_factory(enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    def create(total: int | None, description: str) -> Any:
        return tqdm(total=total, desc=description, unit="step", dynamic_ncols=True, leave=False)

    return create


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper()), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


class TrainGroup(FergenGroup):
    """FergenGroup that also reports fergen_train's user errors as ``error: MESSAGE`` with exit status 2."""

    def invoke(self, context: click.Context) -> Any:
        try:
            return super().invoke(context)
        except USER_ERRORS as error:
            click.echo(f"error: {error}", err=True)
            context.exit(2)


@click.group(cls=TrainGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True, help="Minimum level of log messages on stderr.")
def main(log_level: str) -> None:
    """Train and evaluate FERAtt and its PreActResNet18 baseline on fergen data."""
    _configure_logging(log_level)


@main.command("fit")
@click.argument("config_path", metavar="CONFIG")
@click.option("--output", "-o", "output_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for checkpoints, metrics.jsonl and curves.png.")
@click.option("--resume", is_flag=True, help="Continue from the newest epoch_NNN.pt in --output.")
@click.option("--encoder-weights", type=click.Path(dir_okay=False),
              help="Local torchvision resnet state_dict for the attention encoder (overrides model.encoder_weights).")
@click.option("--device", help="Device (auto, cpu, cuda, cuda:N); overrides runtime.device.")
@click.option("--epochs", type=click.IntRange(min=1), help="Number of epochs; overrides optim.epochs.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Samples per batch; overrides optim.batch_size.")
@click.option("--num-workers", type=click.IntRange(min=0), help="DataLoader worker processes; overrides data.num_workers.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar per epoch.")
def fit_command(config_path: str, output_dir: str, resume: bool, encoder_weights: str | None, device: str | None,
                epochs: int | None, batch_size: int | None, num_workers: int | None, progress: bool) -> None:
    """Train the model that CONFIG (a YAML file, or a bundled config name such as 'lfw-demo') describes."""
    config = load_config(config_path)
    if encoder_weights is not None:
        config = replace_section(config, "model", encoder_weights=str(Path(encoder_weights).resolve()))
    if device is not None:
        config = replace_section(config, "runtime", device=device)
    if epochs is not None:
        config = replace_section(config, "optim", epochs=epochs)
    if batch_size is not None:
        config = replace_section(config, "optim", batch_size=batch_size)
    if num_workers is not None:
        config = replace_section(config, "data", num_workers=num_workers)

    train, val = load_training_data(config)
    check_class_count(config, train.class_names, source=str(find_config(config_path)))
    logger.info("training %s on %s (%d classes: %s)", config.model.variant, train.description,
                len(train.class_names), ", ".join(train.class_names))
    result = fit(
        config, train.dataset, train.class_names, output_dir,
        val_data=None if val is None else val.dataset,
        recipe_sha256=train.recipe_sha256, resume=resume, progress=_progress_factory(progress),
        collate_fn=train.collate_fn,
    )
    click.echo(f"finished {len(result.history)} epochs; last checkpoint {result.last_checkpoint}")
    if result.best_checkpoint is not None:
        click.echo(f"best validation macro F1 checkpoint: {result.best_checkpoint}")


def _load_inference_model(checkpoint: str, device: str) -> tuple[torch.nn.Module, dict[str, Any], Runtime]:
    payload = load_checkpoint(checkpoint)
    model = model_from_checkpoint(payload, source=checkpoint)
    runtime = resolve_runtime(RuntimeConfig(device=device))
    memory_format = torch.channels_last if runtime.channels_last else torch.contiguous_format
    return model.to(runtime.device, memory_format=memory_format), payload, runtime


@main.command("evaluate")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.argument("data")
@click.option("--output", "-o", "output_dir", type=click.Path(file_okay=False),
              help="Folder for metrics.json and the PNG figures [default: evaluation/ beside CHECKPOINT].")
@click.option("--real", is_flag=True,
              help="Evaluate on the real face images of the recipe DATA instead of renders.")
@click.option("--split", type=click.Choice(["all", "train", "val"]), default="all", show_default=True,
              help="Recipe sample indices to render: all, train (all but the last 10%) or val (the last 10%).")
@click.option("--fold-part", type=click.Choice(["train", "test"]),
              help="Replace the recipe's faces.subjects.fold.part, for subject-independent evaluation.")
@click.option("--data-root", type=click.Path(file_okay=False),
              help="Folder that relative paths in the recipe are resolved against "
                   "[default: $FERGEN_DATA_ROOT, else the current folder].")
@click.option("--face-crop/--no-face-crop", default=True, show_default=True,
              help="With --real, crop each photo to the largest face found by fergen's detector; "
                   "photos with no face found are used whole.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True, help="Samples per batch.")
@click.option("--num-workers", type=click.IntRange(min=0), default=2, show_default=True,
              help="DataLoader worker processes.")
@click.option("--device", default="auto", show_default=True, help="Device: auto, cpu, cuda or cuda:N.")
@click.option("--attention-examples", type=click.IntRange(min=0), default=8, show_default=True,
              help="Samples shown in attention_grid.png (FERAtt variants only).")
def evaluate_command(checkpoint: str, data: str, output_dir: str | None, real: bool, split: str,
                     fold_part: str | None, data_root: str | None, face_crop: bool, batch_size: int,
                     num_workers: int, device: str, attention_examples: int) -> None:
    """Evaluate CHECKPOINT on DATA: a recipe (path or bundled name), shard files or a shard folder.

    Writes metrics.json (accuracy, macro and per-class precision, recall and
    F1, confusion matrix), confusion_matrix.png, predictions.csv and, for
    FERAtt variants, attention_grid.png.
    """
    source = parse_data_argument(data, split, fold_part, data_root)
    _evaluate(checkpoint, source, output_dir, real, face_crop, batch_size, num_workers, device, attention_examples)


def _evaluate(checkpoint: str, source: DataSourceConfig, output_dir: str | None, real: bool, face_crop: bool,
              batch_size: int, num_workers: int, device: str, attention_examples: int) -> None:
    model, payload, runtime = _load_inference_model(checkpoint, device)
    config = checkpoint_config(payload, checkpoint)
    class_names = list(payload["class_names"])
    input_size = tuple(payload["input_size"])

    loaded = open_real_faces(source, input_size, face_crop) if real else open_source(source)
    mapping = label_mapping(loaded.class_names, class_names, loaded.description)
    criterion = None
    if not real:
        criterion = FERAttLoss(config.loss, config.model.variant, len(class_names), config.model.representation_dim)
        if payload.get("loss") is not None:
            criterion.load_state_dict(payload["loss"])
        criterion = criterion.to(runtime.device)
    loader = make_loader(loaded.dataset, batch_size, False, config.seed, 0, num_workers,
                         pin_memory=runtime.device.type == "cuda", collate_fn=loaded.collate_fn)
    logger.info("evaluating %s on %s", checkpoint, loaded.description)
    result = evaluate(model, criterion, remap_labels(loader, mapping), runtime, len(class_names), input_size,
                      attention_examples=attention_examples, meta_keys=SAMPLE_META_KEYS)
    report = classification_report(result.labels, result.predictions, class_names)
    no_face_found = _report_missing_faces(result.sample_meta) if real and face_crop else None

    output = Path(output_dir) if output_dir is not None else Path(checkpoint).resolve().parent / "evaluation"
    output.mkdir(parents=True, exist_ok=True)
    summary = {
        "checkpoint": str(checkpoint),
        "checkpoint_epoch": int(payload["epoch"]),
        "variant": config.model.variant,
        "data": loaded.description,
        "real_images": real,
        "face_crop": real and face_crop,
        "no_face_found": no_face_found,
        "recipe_sha256": loaded.recipe_sha256,
        "loss": {name: value for name, value in result.stats.metrics.items() if name != "accuracy"},
        **report.to_dict(),
    }
    (output / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    plot_confusion_matrix(report.confusion, class_names, output / "confusion_matrix.png")
    _write_predictions(output / "predictions.csv", result.sample_meta, result.labels, result.predictions,
                       result.probabilities, class_names)
    if result.attention_examples:
        examples = result.attention_examples
        count = len(examples["composite"])
        captions = [f"true {class_names[result.labels[i]]} / predicted {class_names[result.predictions[i]]}"
                    for i in range(count)]
        plot_attention_grid(examples["composite"], examples["attention_map"], examples["attention_image"],
                            output / "attention_grid.png", captions)
    faces_note = f" ({no_face_found} with no face found, scored whole)" if no_face_found else ""
    click.echo(
        f"{report.support.sum()} samples{faces_note}: accuracy {report.accuracy:.4f}, "
        f"macro F1 {report.macro_f1:.4f}; results in {output}"
    )


def _report_missing_faces(sample_meta: Sequence[Mapping[str, Any]]) -> int:
    """Log a warning for each photo in which no face was found (the first few by name) and return their count."""
    missing = [meta for meta in sample_meta if meta.get("face_found") is False]
    for meta in missing[:NO_FACE_WARNINGS]:
        logger.warning("no face found in %s; using the whole image", meta.get("path") or meta.get("face_id"))
    if len(missing) > NO_FACE_WARNINGS:
        logger.warning("no face found in %d more photos; using the whole images", len(missing) - NO_FACE_WARNINGS)
    if missing:
        logger.warning("%d of %d photos had no face found and were scored as whole images; "
                       "pass --no-face-crop to score every photo whole", len(missing), len(sample_meta))
    return len(missing)


def _csv_cell(value: Any) -> str:
    """Format a sample metadata value for predictions.csv: booleans as 1 or 0, a missing value as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


def _write_predictions(path: Path, sample_meta: Sequence[Mapping[str, Any]], labels: np.ndarray,
                       predictions: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str]) -> None:
    """Write one CSV row per sample: where it came from, its label, prediction and class probabilities.

    ``path`` is the photo (real images) or the shard file. ``key`` is the
    sample key in the shards or the render. Cells that do not apply are empty.
    """
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        header = ["index", "path", "key", "face_id", "face_found", "label", "prediction"]
        writer.writerow(header + [f"p_{name}" for name in class_names])
        for index, (meta, label, prediction, row) in enumerate(zip(sample_meta, labels, predictions, probabilities)):
            source = [meta.get("path") or meta.get("url"), meta.get("key"), meta.get("face_id"), meta.get("face_found")]
            writer.writerow([index, *(_csv_cell(value) for value in source), class_names[label],
                             class_names[prediction]] + [f"{p:.6f}" for p in row])


@main.command("predict")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.argument("images", nargs=-1, required=True)
@click.option("--face-crop/--no-face-crop", default=True, show_default=True,
              help="Crop each image to the largest face found by fergen's detector; "
                   "images with no face found are used whole.")
@click.option("--output", "-o", "output_path", type=click.Path(dir_okay=False),
              help="CSV file to write [default: standard output].")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Images per batch.")
@click.option("--device", default="auto", show_default=True, help="Device: auto, cpu, cuda or cuda:N.")
def predict_command(checkpoint: str, images: tuple[str, ...], face_crop: bool, output_path: str | None,
                    batch_size: int, device: str) -> None:
    """Classify IMAGES (files or folders) with CHECKPOINT and write one CSV row per image.

    Columns: path, prediction, confidence, face_box (x0 y0 side, empty when
    not cropped) and one probability column per class. Unreadable images are
    skipped with a warning and counted at the end. The command fails only
    when no image can be read.
    """
    _predict(checkpoint, images, face_crop, output_path, batch_size, device)


def _predict(checkpoint: str, images: Sequence[str], face_crop: bool, output_path: str | None, batch_size: int,
             device: str) -> None:
    model, payload, runtime = _load_inference_model(checkpoint, device)
    class_names = list(payload["class_names"])
    input_size = tuple(payload["input_size"])
    paths = collect_image_paths(images)

    unreadable = 0
    handle = open(output_path, "w", newline="", encoding="utf-8") if output_path else sys.stdout
    try:
        writer = csv.writer(handle)
        writer.writerow(["path", "prediction", "confidence", "face_box"] + [f"p_{name}" for name in class_names])
        for start in range(0, len(paths), batch_size):
            chunk = paths[start : start + batch_size]
            read_paths, tensors, boxes = _read_predict_batch(chunk, face_crop, input_size)
            unreadable += len(chunk) - len(read_paths)
            if not tensors:
                continue
            batch = torch.stack(tensors).to(runtime.device)
            with torch.no_grad(), runtime.autocast():
                probabilities = torch.softmax(model(batch).logits.float(), dim=1).cpu().numpy()
            for path, box, row in zip(read_paths, boxes, probabilities):
                best = int(row.argmax())
                writer.writerow([str(path), class_names[best], f"{row[best]:.6f}", box] + [f"{p:.6f}" for p in row])
    finally:
        if handle is not sys.stdout:
            handle.close()

    if unreadable == len(paths):
        raise DataError(f"none of the {len(paths)} images could be read, so there are no predictions; "
                        "check the warnings above for each file")
    if unreadable:
        logger.warning("%d of %d images could not be read and have no row in the predictions", unreadable, len(paths))


def _read_predict_batch(paths: Sequence[Path], face_crop: bool,
                        input_size: tuple[int, ...]) -> tuple[list[Path], list[torch.Tensor], list[str]]:
    """Read and crop the images of one predict batch, skipping unreadable files with a warning.

    Returns:
        The paths that were read, their model inputs, and their face boxes
        (``"x0 y0 side"``, or empty when not cropped).
    """
    read_paths, tensors, boxes = [], [], []
    for path in paths:
        try:
            image = read_image(path)
        except DataError as error:
            logger.warning("skipped, no prediction: %s", error)
            continue
        box = face_crop_box(image) if face_crop else None
        if face_crop and box is None:
            logger.warning("no face found in %s; using the whole image", path)
        if box is not None:
            image = crop_square(image, box)
        read_paths.append(path)
        tensors.append(to_model_input(image, input_size))
        boxes.append("" if box is None else " ".join(str(v) for v in box))
    return read_paths, tensors, boxes
