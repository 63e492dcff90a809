"""Training config loading, validation errors and the round trip through plain dicts."""

from pathlib import Path

import pytest
import yaml

from fergen_train.config import (
    BUNDLED_CONFIG_DIR,
    ConfigError,
    DataSourceConfig,
    TrainConfig,
    bundled_configs,
    config_from_dict,
    config_to_dict,
    load_config,
    replace_section,
)


def write(tmp_path, data, name="train.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_defaults_follow_feratt():
    config = TrainConfig()

    assert config.optim.optimizer == "adam"
    assert config.optim.batch_size == 200
    assert config.optim.epochs == 60
    assert config.optim.lr == 1e-4
    assert config.model.input_size == (128, 128)
    assert config.model.encoder == "resnet34"
    assert config.model.feature_blocks == 4
    assert config.model.representation_dim == 64


def test_load_full_config(tmp_path):
    path = write(
        tmp_path,
        {
            "seed": 7,
            "model": {"variant": "baseline", "input_size": [96, 80], "encoder_weights": "weights/r34.pth"},
            "data": {
                "train": {"recipe": "recipes/train.yaml", "split": "train", "data_root": "/data",
                          "val_fraction": 0.2, "length": 1000, "fold_part": "train"},
                "val": {"shards": "val/val-{000000..000003}.tar"},
                "num_workers": 4,
            },
            "optim": {"lr": 0.001, "betas": [0.5, 0.9], "schedule": "cosine", "grad_clip_norm": 5},
            "loss": {"classification": "bce", "priors": [1, 2, 1], "class_means": "running"},
            "runtime": {"amp": "off", "channels_last": False, "steps_per_epoch": 10},
        },
    )

    config = load_config(path)

    assert config.seed == 7
    assert config.model.input_size == (96, 80)
    assert config.model.encoder_weights == str(tmp_path / "weights/r34.pth")
    assert config.data.train == DataSourceConfig(
        recipe=str(tmp_path / "recipes/train.yaml"),
        split="train",
        data_root="/data",
        val_fraction=0.2,
        length=1000,
        fold_part="train",
    )
    assert config.data.val.shards == (str(tmp_path / "val/val-{000000..000003}.tar"),)
    assert config.data.num_workers == 4
    assert config.optim.betas == (0.5, 0.9)
    assert config.optim.grad_clip_norm == 5.0
    assert config.loss.priors == (1.0, 2.0, 1.0)
    assert config.runtime.channels_last == "off"
    assert config.runtime.steps_per_epoch == 10


def test_scientific_notation_without_dot(tmp_path):
    # PyYAML reads 1e-3 (no dot) as the string '1e-3' and 1.0e-3 as a float.
    path = tmp_path / "train.yaml"
    path.write_text(
        "optim: {lr: 1e-3, weight_decay: 5E-4, grad_clip_norm: 1e1, betas: [9e-1, 0.999]}\n"
        "loss: {sigma: 2e0, priors: [1e0, 2e0]}\n"
    )
    assert yaml.safe_load(path.read_text())["optim"]["lr"] == "1e-3"

    config = load_config(path)

    assert config.optim.lr == 0.001
    assert config.optim.weight_decay == 0.0005
    assert config.optim.grad_clip_norm == 10.0
    assert config.optim.betas == (0.9, 0.999)
    assert config.loss.sigma == 2.0
    assert config.loss.priors == (1.0, 2.0)
    assert config_to_dict(config)["optim"]["lr"] == 0.001


def test_bundled_recipe_name_kept(tmp_path):
    config = load_config(write(tmp_path, {"data": {"train": {"recipe": "demo"}}}))

    assert config.data.train.recipe == "demo"


def test_source_shorthand(tmp_path):
    config = load_config(write(tmp_path, {"data": {"train": "train.yaml", "val": "http://host/val-{0..3}.tar"}}))

    assert config.data.train.recipe == str(tmp_path / "train.yaml")
    assert config.data.val.shards == ("http://host/val-{0..3}.tar",)


def test_round_trip_plain_dict():
    config = replace_section(TrainConfig(), "loss", priors=(0.5, 0.5))
    config = replace_section(config, "data", train=DataSourceConfig(shards=("a.tar", "b.tar")))

    plain = config_to_dict(config)

    assert plain["model"]["input_size"] == [128, 128]
    assert plain["data"]["train"]["shards"] == ["a.tar", "b.tar"]
    assert config_from_dict(plain) == config


@pytest.mark.parametrize(
    "data, message",
    [
        ({"modle": {}}, "modle: unknown key; allowed keys here are seed, model"),
        ({"model": {"variant": "feratt"}}, "model.variant: expected one of feratt-cls, feratt-rep-cls, baseline, got 'feratt'"),
        ({"model": {"input_size": 16}}, "model.input_size: expected an integer >= 32, got 16"),
        ({"model": {"input_size": [128]}}, r"model.input_size: expected an integer or \[height, width\]"),
        ({"model": {"feature_blocks": 0}}, "model.feature_blocks: expected an integer >= 1, got 0"),
        ({"model": {"attention_channels": 5}}, r"model.attention_channels: expected 1 or model.feature_channels \(32\), got 5"),
        ({"model": {"encoder_weights": "w.pth", "encoder_width": 32}}, "torchvision weights need encoder_width 64"),
        ({"model": {"dilation": "yes"}}, "model.dilation: expected true or false, got 'yes'"),
        ({"model": []}, "model: expected a mapping, got list"),
        ({"data": {"train": {"recipe": "a.yaml", "shards": "b.tar"}}}, "data.train: expected exactly one of 'recipe'"),
        ({"data": {"train": {}}}, "data.train: expected exactly one of 'recipe'"),
        ({"data": {"train": {"shards": []}}}, "data.train.shards: expected a URL or a non-empty list"),
        ({"data": {"num_workers": -1}}, "data.num_workers: expected an integer >= 0, got -1"),
        ({"data": {"train": {"recipe": "a.yaml", "split": "test"}}}, "data.train.split: expected one of all, train, val"),
        ({"data": {"train": {"recipe": "a.yaml", "val_fraction": 1}}}, r"data.train.val_fraction: expected a number in \[0, 1\)"),
        ({"data": {"train": {"recipe": "a.yaml", "fold_part": "val"}}}, "data.train.fold_part: expected one of train, test"),
        ({"data": {"train": {"shards": "a.tar", "split": "val"}}}, "data.train.split: applies to recipes only"),
        ({"data": {"train": {"shards": "a.tar", "length": 5}}}, "data.train.length: applies to recipes only"),
        ({"optim": {"lr": 0}}, "optim.lr: expected a number > 0.0, got 0"),
        ({"optim": {"lr": "fast"}}, "optim.lr: expected a number, got 'fast'"),
        ({"optim": {"batch_size": True}}, "optim.batch_size: expected an integer >= 1, got True"),
        ({"optim": {"betas": [0.9, 1.0]}}, r"optim.betas: expected both betas in \[0, 1\)"),
        ({"optim": {"optimizer": "lion"}}, "optim.optimizer: expected one of adam, adamw, sgd, got 'lion'"),
        ({"loss": {"sigma": -1}}, "loss.sigma: expected a number > 0.0, got -1"),
        ({"loss": {"momentum": 2}}, r"loss.momentum: expected a number in \(0, 1\], got 2"),
        ({"loss": {"priors": "uniform"}}, "loss.priors: expected a list of positive numbers"),
        ({"loss": {"attention_weight": float("nan")}}, "loss.attention_weight: expected a finite number, got nan"),
        ({"loss": {"attention_weight": "inf"}}, "loss.attention_weight: expected a finite number, got 'inf'"),
        ({"optim": {"lr": "0e0"}}, "optim.lr: expected a number > 0.0, got '0e0'"),
        ({"optim": {"lr": [1]}}, r"optim.lr: expected a finite number, got \[1\]"),
        ({"runtime": {"device": "tpu"}}, "runtime.device: expected auto, cpu, cuda or cuda:N, got 'tpu'"),
        ({"runtime": {"amp": "fp16"}}, "runtime.amp: expected one of auto, bf16, off, got 'fp16'"),
        ({"runtime": {"keep_checkpoints": 0}}, "runtime.keep_checkpoints: expected an integer >= 1, got 0"),
        ({"seed": -1}, "seed: expected an integer >= 0, got -1"),
    ],
)
def test_invalid_values(tmp_path, data, message):
    path = write(tmp_path, data)

    with pytest.raises(ConfigError, match=message) as raised:
        load_config(path)

    assert str(raised.value).startswith(f"{path}: ")


def test_invalid_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("model: [unclosed\n")

    with pytest.raises(ConfigError, match="broken.yaml: invalid YAML"):
        load_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="training config .*absent.yaml' not found"):
        load_config(tmp_path / "absent.yaml")


def test_bundled_config_by_name():
    config = load_config("lfw-demo")

    assert bundled_configs() == {"lfw-demo": BUNDLED_CONFIG_DIR / "lfw-demo.yaml"}
    assert config.data.train.recipe == "lfw-demo"
    assert config.data.train.split == "train"
    assert config.data.val.split == "val"
    assert config.model.input_size == (64, 64)


def test_quick_start_shows_bundled_config():
    docs = Path(__file__).resolve().parents[2] / "docs" / "training.md"

    assert "```yaml\n" + (BUNDLED_CONFIG_DIR / "lfw-demo.yaml").read_text() + "```" in docs.read_text()


def test_unknown_config_name():
    with pytest.raises(FileNotFoundError) as raised:
        load_config("lfw-dmeo")

    assert str(raised.value) == ("training config 'lfw-dmeo' not found; pass a YAML file or the name of a "
                                 "bundled config (lfw-demo)")


def test_empty_file_uses_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")

    assert load_config(path) == TrainConfig()
