"""The fergen-train command line, run in-process on real files."""

import csv
import json
import subprocess
import sys

import numpy as np
import torch
import pytest
import skimage.data
import yaml
from click.testing import CliRunner
from PIL import Image

from fergen_train.cli import _report_missing_faces, main
from fergen_train.config import load_config, replace_section
from fergen_train.data import fergen_torch_available, load_training_data
from fergen_train.trainer import fit

from .synthetic import SquaresDataset, tiny_config

LFW_CLASSES = ["lfw000", "lfw001", "lfw002", "lfw003"]

LFW_RECIPE = {
    "version": 1,
    "name": "lfw4",
    "seed": 0,
    "faces": {"kind": "lfw-subset", "count": 4, "mask": {"strategy": "ellipse"}},
    "backgrounds": {"kind": "skimage", "images": ["coffee", "chelsea"]},
    "render": {"output_size": [32, 32]},
}


@pytest.fixture(scope="module")
def lfw_checkpoint(tmp_path_factory):
    """A tiny FERAtt checkpoint whose classes are the first four lfw_subset faces."""
    folder = tmp_path_factory.mktemp("run")
    data = SquaresDataset(length=32)
    result = fit(tiny_config(epochs=1), data, LFW_CLASSES, folder)
    return result.last_checkpoint


@pytest.fixture
def lfw_recipe(tmp_path):
    path = tmp_path / "lfw4.yaml"
    path.write_text(yaml.safe_dump(LFW_RECIPE))
    return path


def lfw_images(folder):
    """Write the four lfw_subset faces as PNG files, as fergen's lfw-subset source decodes them."""
    folder.mkdir()
    paths = []
    for index in range(4):
        grey = skimage.data.lfw_subset()[index]
        grey = np.clip(grey * 255.0 + 0.5, 0, 255).astype(np.uint8)
        path = folder / f"face{index}.png"
        Image.fromarray(np.repeat(grey[..., None], 3, axis=2)).save(path)
        paths.append(path)
    return paths


def read_csv(text):
    return list(csv.DictReader(text.splitlines()))


def test_help_lists_commands():
    result = CliRunner().invoke(main, ["--help"])

    assert result.exit_code == 0
    for command in ("fit", "evaluate", "predict"):
        assert command in result.output


@pytest.mark.parametrize("arguments, usage", [
    (["-h"], "Usage: main [OPTIONS] COMMAND [ARGS]..."),
    (["fit", "-h"], "Usage: main fit [OPTIONS] CONFIG"),
    (["evaluate", "-h"], "Usage: main evaluate [OPTIONS] CHECKPOINT DATA"),
    (["predict", "-h"], "Usage: main predict [OPTIONS] CHECKPOINT IMAGES..."),
])
def test_short_help_option(arguments, usage):
    result = CliRunner().invoke(main, arguments)

    assert result.exit_code == 0, result.output
    assert result.output.startswith(usage + "\n")


def test_evaluate_help_names_data_root_default():
    result = CliRunner().invoke(main, ["evaluate", "-h"], terminal_width=200)

    assert ("Folder that relative paths in the recipe are resolved against "
            "[default: $FERGEN_DATA_ROOT, else the current folder].") in result.output


def test_module_entry_point():
    completed = subprocess.run([sys.executable, "-m", "fergen_train", "--help"], capture_output=True, text=True)

    assert completed.returncode == 0
    assert "Usage: fergen-train" in completed.stdout


def test_fit_invalid_config(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("optim:\n  lr: -1\n")

    result = CliRunner().invoke(main, ["fit", str(config), "--output", str(tmp_path / "run")])

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == f"error: {config}: optim.lr: expected a number > 0.0, got -1\n"


def test_fit_config_without_data(tmp_path):
    config = tmp_path / "nodata.yaml"
    config.write_text("seed: 1\n")

    result = CliRunner().invoke(main, ["fit", str(config), "--output", str(tmp_path / "run")])

    assert result.exit_code == 2
    assert result.stderr == "error: the config has no data.train; set data.train.recipe or data.train.shards\n"


def test_fit_priors_count_mismatch(tmp_path, lfw_recipe):
    config = tmp_path / "priors.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"variant": "feratt-rep-cls", "input_size": 32},
        "data": {"train": {"recipe": str(lfw_recipe)}, "num_workers": 0},
        "loss": {"priors": [1, 2]},
    }))

    result = CliRunner().invoke(main, ["fit", str(config), "--output", str(tmp_path / "run")])

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"error: {config}: loss.priors: expected 4 values, one per class (lfw000, lfw001, lfw002, lfw003), "
        "got 2: [1.0, 2.0]; list one prior per class in that order, or remove loss.priors for uniform priors\n"
    )
    assert not (tmp_path / "run").exists()


def test_fergen_error_style(tmp_path, lfw_checkpoint):
    """A FergenError from fergen itself (here an unknown recipe) is reported like fergen does."""
    result = CliRunner().invoke(main, ["evaluate", str(lfw_checkpoint), str(tmp_path / "absent.yaml")])

    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: recipe {str(tmp_path / 'absent.yaml')!r} not found.")
    assert "Traceback" not in result.output


def test_usage_error_unchanged(tmp_path):
    result = CliRunner().invoke(main, ["fit", str(tmp_path / "train.yaml")])

    assert result.exit_code == 2
    assert "Usage: main fit [OPTIONS] CONFIG" in result.stderr
    assert "Error: Missing option '--output' / '-o'." in result.stderr


def test_evaluate_real_faces(tmp_path, lfw_checkpoint, lfw_recipe):
    output = tmp_path / "eval"

    result = CliRunner().invoke(
        main, ["evaluate", str(lfw_checkpoint), str(lfw_recipe), "--real", "--no-face-crop",
               "--output", str(output), "--num-workers", "0", "--device", "cpu"],
    )

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in output.iterdir()) == [
        "attention_grid.png", "confusion_matrix.png", "metrics.json", "predictions.csv"
    ]
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["samples"] == 4
    assert metrics["real_images"] is True
    assert metrics["class_names"] == LFW_CLASSES
    assert np.asarray(metrics["confusion_matrix"]).sum() == 4
    assert [row.sum() for row in np.asarray(metrics["confusion_matrix"])] == [1, 1, 1, 1]
    assert set(metrics["per_class"]) == set(LFW_CLASSES)
    assert metrics["face_crop"] is False
    assert metrics["no_face_found"] is None
    rows = read_csv((output / "predictions.csv").read_text())
    assert list(rows[0])[:7] == ["index", "path", "key", "face_id", "face_found", "label", "prediction"]
    assert [row["label"] for row in rows] == LFW_CLASSES
    assert [row["face_id"] for row in rows] == [f"lfw-subset:{index:03d}" for index in range(4)]
    assert [row["path"] for row in rows] == ["", "", "", ""]
    assert [row["face_found"] for row in rows] == ["", "", "", ""]
    correct = sum(row["label"] == row["prediction"] for row in rows)
    assert metrics["accuracy"] == correct / 4


def test_evaluate_real_counts_missing_faces(tmp_path, lfw_checkpoint, caplog):
    faces = tmp_path / "faces"
    (faces / "lfw000").mkdir(parents=True)
    (faces / "lfw001").mkdir()
    astronaut = faces / "lfw000" / "eileen_1.png"
    Image.fromarray(skimage.data.astronaut()).save(astronaut)
    blank = faces / "lfw001" / "grey_1.png"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(blank)
    recipe = tmp_path / "folder.yaml"
    recipe.write_text(yaml.safe_dump(dict(LFW_RECIPE, faces={"kind": "folder", "path": "faces",
                                                              "mask": {"strategy": "ellipse"}})))
    output = tmp_path / "eval"

    result = CliRunner().invoke(
        main, ["evaluate", str(lfw_checkpoint), str(recipe), "--real", "--data-root", str(tmp_path),
               "--output", str(output), "--num-workers", "1", "--device", "cpu"],
    )

    assert result.exit_code == 0, result.output
    assert f"no face found in {blank}; using the whole image" in caplog.text
    assert f"no face found in {astronaut}" not in caplog.text
    assert "1 of 2 photos had no face found and were scored as whole images" in caplog.text
    assert result.stdout.startswith("2 samples (1 with no face found, scored whole): accuracy ")
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["face_crop"] is True
    assert metrics["no_face_found"] == 1
    rows = read_csv((output / "predictions.csv").read_text())
    assert [row["path"] for row in rows] == [str(astronaut), str(blank)]
    assert [row["face_id"] for row in rows] == ["lfw000/eileen_1.png", "lfw001/grey_1.png"]
    assert [row["face_found"] for row in rows] == ["1", "0"]
    assert [row["key"] for row in rows] == ["", ""]


def test_missing_face_warnings_limited(caplog):
    metas = [{"path": f"photo{index:02d}.png", "face_found": index >= 12} for index in range(15)]

    count = _report_missing_faces(metas)

    assert count == 12
    messages = [record.getMessage() for record in caplog.records]
    assert messages[:10] == [f"no face found in photo{index:02d}.png; using the whole image" for index in range(10)]
    assert messages[10:] == [
        "no face found in 2 more photos; using the whole images",
        "12 of 15 photos had no face found and were scored as whole images; "
        "pass --no-face-crop to score every photo whole",
    ]


def test_predict_matches_evaluate(tmp_path, lfw_checkpoint, lfw_recipe):
    paths = lfw_images(tmp_path / "images")
    CliRunner().invoke(
        main, ["evaluate", str(lfw_checkpoint), str(lfw_recipe), "--real", "--no-face-crop",
               "--output", str(tmp_path / "eval"), "--num-workers", "0", "--device", "cpu"],
    )
    evaluated = read_csv((tmp_path / "eval" / "predictions.csv").read_text())

    result = CliRunner().invoke(main, ["predict", str(lfw_checkpoint), str(tmp_path / "images"), "--no-face-crop",
                                       "--device", "cpu"])

    assert result.exit_code == 0, result.output
    predicted = read_csv(result.stdout)
    assert [row["path"] for row in predicted] == [str(path) for path in paths]
    for mine, theirs in zip(predicted, evaluated):
        assert mine["prediction"] == theirs["prediction"]
        for name in LFW_CLASSES:
            assert float(mine[f"p_{name}"]) == pytest.approx(float(theirs[f"p_{name}"]), abs=2e-6)


def test_predict_crops_faces_by_default(tmp_path, lfw_checkpoint, caplog):
    image = tmp_path / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(image)
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(blank)
    output = tmp_path / "predictions.csv"

    result = CliRunner().invoke(
        main, ["predict", str(lfw_checkpoint), str(image), str(blank), "--output", str(output), "--device", "cpu"],
    )

    assert result.exit_code == 0, result.output
    rows = read_csv(output.read_text())
    assert [row["path"] for row in rows] == [str(image), str(blank)]
    x0, y0, side = (int(value) for value in rows[0]["face_box"].split())
    assert 0 < side < 512
    assert rows[1]["face_box"] == ""
    assert f"no face found in {blank}; using the whole image" in caplog.text
    for row in rows:
        probabilities = [float(row[f"p_{name}"]) for name in LFW_CLASSES]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
        assert row["prediction"] in LFW_CLASSES
        assert float(row["confidence"]) == pytest.approx(max(probabilities))


def test_predict_no_face_crop(tmp_path, lfw_checkpoint, caplog):
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(blank)

    result = CliRunner().invoke(main, ["predict", str(lfw_checkpoint), str(blank), "--no-face-crop",
                                       "--device", "cpu"])

    assert result.exit_code == 0, result.output
    rows = read_csv(result.stdout)
    assert [row["path"] for row in rows] == [str(blank)]
    assert rows[0]["face_box"] == ""
    assert "no face found" not in caplog.text


def test_predict_skips_corrupt_image(tmp_path, lfw_checkpoint, caplog):
    folder = tmp_path / "photos"
    paths = lfw_images(folder)
    corrupt = folder / "face1.png"
    corrupt.write_bytes(paths[1].read_bytes()[:40])  # the PNG signature and header, no pixel data

    result = CliRunner().invoke(main, ["predict", str(lfw_checkpoint), str(folder), "--no-face-crop",
                                       "--device", "cpu", "--batch-size", "2"])

    assert result.exit_code == 0, result.output
    rows = read_csv(result.stdout)
    assert [row["path"] for row in rows] == [str(paths[0]), str(paths[2]), str(paths[3])]
    assert f"skipped, no prediction: image {corrupt} is not a readable image" in caplog.text
    assert "1 of 4 images could not be read and have no row in the predictions" in caplog.text


def test_predict_no_readable_image(tmp_path, lfw_checkpoint, caplog):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"not a JPEG")
    (folder / "b.png").write_bytes(b"")

    result = CliRunner().invoke(main, ["predict", str(lfw_checkpoint), str(folder), "--device", "cpu"])

    assert result.exit_code == 2
    assert read_csv(result.stdout) == []
    assert result.stderr == ("error: none of the 2 images could be read, so there are no predictions; "
                             "check the warnings above for each file\n")
    assert f"image {folder / 'a.jpg'} is not a readable image" in caplog.text
    assert f"image {folder / 'b.png'} is not a readable image" in caplog.text


def test_predict_missing_image(tmp_path, lfw_checkpoint):
    result = CliRunner().invoke(main, ["predict", str(lfw_checkpoint), str(tmp_path / "absent.jpg")])

    assert result.exit_code == 2
    assert result.stderr == f"error: image or folder {str(tmp_path / 'absent.jpg')!r} not found\n"


def test_evaluate_missing_checkpoint(tmp_path, lfw_recipe):
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path / "none.pt"), str(lfw_recipe), "--real"])

    assert result.exit_code == 2
    assert result.stderr.startswith("error: checkpoint ")
    assert "none.pt' not found" in result.stderr


def test_evaluate_unknown_class(tmp_path, lfw_recipe):
    data = SquaresDataset(length=32)
    run = fit(tiny_config(epochs=1), data, ["a", "b", "c", "d"], tmp_path / "run")

    result = CliRunner().invoke(main, ["evaluate", str(run.last_checkpoint), str(lfw_recipe), "--real",
                                       "--num-workers", "0"])

    assert result.exit_code == 2
    assert result.stderr.startswith("error: real faces of recipe ")
    assert "has classes ['lfw000', 'lfw001', 'lfw002', 'lfw003'] that the checkpoint does not know" in result.stderr


@pytest.mark.skipif(not fergen_torch_available(), reason="fergen.torch.RenderDataset is not available yet")
def test_fit_evaluate_resume_on_recipe(tmp_path, lfw_recipe):
    recipe = dict(LFW_RECIPE, output={"samples": 32, "samples_per_shard": 32})
    lfw_recipe.write_text(yaml.safe_dump(recipe))
    config = {
        "seed": 0,
        "model": {"variant": "feratt-cls", "input_size": 32, "encoder": "resnet18", "encoder_width": 8,
                  "decoder_width": 4, "feature_channels": 8, "feature_blocks": 1, "classifier_width": 8,
                  "representation_dim": 8},
        "data": {"train": {"recipe": str(lfw_recipe)}, "val": {"recipe": str(lfw_recipe)}, "num_workers": 0},
        "optim": {"batch_size": 16, "epochs": 1, "lr": 0.001},
        "runtime": {"device": "cpu"},
    }
    config_path = tmp_path / "train.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"

    first = CliRunner().invoke(main, ["fit", str(config_path), "--output", str(run)])
    resumed = CliRunner().invoke(main, ["fit", str(config_path), "--output", str(run), "--resume", "--epochs", "2",
                                        "--no-progress"])
    evaluated = CliRunner().invoke(main, ["evaluate", str(run / "epoch_002.pt"), str(lfw_recipe),
                                          "--output", str(tmp_path / "eval"), "--num-workers", "0"])

    assert first.exit_code == 0, first.output
    assert "epoch 1/1" in first.stderr  # the tqdm progress bar
    assert resumed.exit_code == 0, resumed.output
    assert evaluated.exit_code == 0, evaluated.output
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["samples"] == 32
    assert metrics["accuracy"] == rows[-1]["val_accuracy"]
    assert metrics["no_face_found"] is None
    predictions = read_csv((tmp_path / "eval" / "predictions.csv").read_text())
    assert [row["key"] for row in predictions] == [f"{index:09d}" for index in range(32)]
    assert {row["face_id"] for row in predictions} == {f"lfw-subset:{index:03d}" for index in range(4)}
    assert {row["path"] for row in predictions} == {""}


@pytest.mark.skipif(not fergen_torch_available(), reason="fergen.torch.ShardDataset is not available yet")
def test_fit_and_evaluate_on_shards(tmp_path):
    from fergen.engine import render_to_folder
    from fergen.recipe import recipe_from_dict

    recipe = recipe_from_dict(dict(LFW_RECIPE, output={"samples": 48, "samples_per_shard": 16}))
    render_to_folder(recipe, tmp_path / "shards")
    config = {
        "model": {"variant": "baseline", "input_size": 32, "classifier_width": 8, "representation_dim": 8},
        "data": {"train": {"shards": str(tmp_path / "shards"), "shuffle_buffer": 8},
                 "val": {"shards": str(tmp_path / "shards" / "shard-{000000..000001}.tar")},
                 "num_workers": 2},
        "optim": {"batch_size": 8, "epochs": 1},
        "runtime": {"device": "cpu"},
    }
    config_path = tmp_path / "train.yaml"
    config_path.write_text(yaml.safe_dump(config))

    trained = CliRunner().invoke(main, ["fit", str(config_path), "--output", str(tmp_path / "run"), "--no-progress"])
    evaluated = CliRunner().invoke(main, ["evaluate", str(tmp_path / "run" / "epoch_001.pt"), str(tmp_path / "shards"),
                                          "--output", str(tmp_path / "eval"), "--num-workers", "0"])

    assert trained.exit_code == 0, trained.output
    assert evaluated.exit_code == 0, evaluated.output
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text())
    assert row["train_samples"] == 48
    payload = torch.load(tmp_path / "run" / "epoch_001.pt", weights_only=True)
    assert payload["recipe_sha256"] == recipe.sha256
    assert payload["class_names"] == LFW_CLASSES
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["samples"] == 48
    assert metrics["recipe_sha256"] == recipe.sha256
    assert metrics["data"] == f"3 shards in {tmp_path / 'shards'}/"
    predictions = read_csv((tmp_path / "eval" / "predictions.csv").read_text())
    shard_names = [f"shard-{index // 16:06d}.tar" for index in range(48)]
    assert [row["path"] for row in predictions] == [str(tmp_path / "shards" / name) for name in shard_names]
    assert [row["key"] for row in predictions] == [f"{index:09d}" for index in range(48)]
    assert all(row["face_id"].startswith("lfw-subset:") for row in predictions)
    assert not (tmp_path / "eval" / "attention_grid.png").exists()


@pytest.mark.skipif(not fergen_torch_available(), reason="fergen.torch.RenderDataset is not available yet")
def test_quick_start_config_trains(tmp_path):
    """The bundled lfw-demo config of the docs' Quick start trains and validates (one step here)."""
    config = load_config("lfw-demo")
    config = replace_section(config, "optim", epochs=1)
    config = replace_section(config, "runtime", steps_per_epoch=1)
    config = replace_section(config, "data", num_workers=0)
    train, val = load_training_data(config)

    result = fit(config, train.dataset, train.class_names, tmp_path / "run", val_data=val.dataset,
                 recipe_sha256=train.recipe_sha256, collate_fn=train.collate_fn)

    assert train.class_names == tuple(f"lfw{index:03d}" for index in range(8))
    assert [row["epoch"] for row in result.history] == [1]
    assert result.history[0]["train_samples"] == 32
    assert len(val.dataset) == 200
    assert 0.0 <= result.history[0]["val_macro_f1"] <= 1.0
    assert result.best_checkpoint == tmp_path / "run" / "best.pt"
