"""Training configuration: YAML loading, validation and conversion to plain dicts.

The dataclasses live in :mod:`fergen_train.config_types` and are re-exported
here. A config file has the top-level keys ``seed``, ``model``, ``data``, ``optim``,
``loss`` and ``runtime``; every key has a default except ``data.train``.
docs/training.md lists them. Relative paths in a file are resolved against
the file's folder when it is loaded, so a run does not depend on the working
directory. Configs bundled in ``fergen_train/configs/`` load by name, such as
``lfw-demo``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from fergen_train.config_types import (
    VARIANT_NAMES,
    ConfigError,
    DataConfig,
    DataSourceConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    RuntimeConfig,
    TrainConfig,
)

__all__ = [
    "VARIANT_NAMES",
    "ConfigError",
    "DataConfig",
    "DataSourceConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "RuntimeConfig",
    "TrainConfig",
    "bundled_configs",
    "check_class_count",
    "config_from_dict",
    "config_to_dict",
    "find_config",
    "load_config",
    "replace_section",
]

#: Folder of the training configs that ship with the package.
BUNDLED_CONFIG_DIR = Path(__file__).resolve().parent / "configs"

def _fail(source: str, key: str, message: str) -> ConfigError:
    return ConfigError(f"{source}: {key}: {message}")


def _check_keys(mapping: Any, allowed: Sequence[str], source: str, where: str) -> Mapping[str, Any]:
    if mapping is None:
        return {}
    if not isinstance(mapping, Mapping):
        raise _fail(source, where or "top level", f"expected a mapping, got {type(mapping).__name__} {mapping!r}")
    unknown = sorted(str(key) for key in mapping if key not in allowed)
    if unknown:
        raise _fail(
            source,
            f"{where}.{unknown[0]}" if where else unknown[0],
            f"unknown key; allowed keys here are {', '.join(allowed)}",
        )
    return mapping


def _integer(value: Any, source: str, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(source, key, f"expected an integer >= {minimum}, got {value!r}")
    return value


def _number(value: Any, source: str, key: str, minimum: float = 0.0, strict: bool = False) -> float:
    number = value
    if isinstance(value, str):
        # PyYAML follows YAML 1.1 and reads scientific notation without a dot,
        # such as 1e-3, as a string, so a string that float() parses is accepted.
        try:
            number = float(value)
        except ValueError:
            raise _fail(source, key, f"expected a number, got {value!r}") from None
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
        raise _fail(source, key, f"expected a finite number, got {value!r}")
    if number < minimum or (strict and number == minimum):
        bound = f"> {minimum}" if strict else f">= {minimum}"
        raise _fail(source, key, f"expected a number {bound}, got {value!r}")
    return float(number)


def _choice(value: Any, source: str, key: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise _fail(source, key, f"expected one of {', '.join(choices)}, got {value!r}")
    return value


def _flag(value: Any, source: str, key: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(source, key, f"expected true or false, got {value!r}")
    return value


def _text(value: Any, source: str, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(source, key, f"expected a non-empty string, got {value!r}")
    return value


def _local_path(value: str, base: Path | None) -> str:
    """Resolve a relative local path against ``base``; URLs and absolute paths pass through."""
    if base is None or "://" in value or value.startswith("pipe:") or os.path.isabs(value):
        return value
    return str(base / value)


def _parse_size(value: Any, source: str, key: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise _fail(source, key, f"expected an integer or [height, width], got {value!r}")
    height, width = (_integer(item, source, key, 32) for item in value)
    return height, width


def _parse_model(raw: Any, source: str, base: Path | None) -> ModelConfig:
    names = [f.name for f in dataclasses.fields(ModelConfig)]
    raw = _check_keys(raw, names, source, "model")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        key = f"model.{name}"
        if name == "variant":
            values[name] = _choice(value, source, key, VARIANT_NAMES)
        elif name == "input_size":
            values[name] = _parse_size(value, source, key)
        elif name == "encoder":
            values[name] = _choice(value, source, key, ("resnet18", "resnet34"))
        elif name == "encoder_weights":
            values[name] = None if value is None else _local_path(_text(value, source, key), base)
        elif name == "dilation":
            values[name] = _flag(value, source, key)
        else:
            values[name] = _integer(value, source, key, 1)
    config = ModelConfig(**values)
    if config.attention_channels not in (1, config.feature_channels):
        raise _fail(
            source,
            "model.attention_channels",
            f"expected 1 or model.feature_channels ({config.feature_channels}), "
            f"got {config.attention_channels}",
        )
    if config.encoder_weights is not None and config.encoder_width != 64:
        raise _fail(
            source,
            "model.encoder_width",
            f"torchvision weights need encoder_width 64, got {config.encoder_width}; "
            "set encoder_width to 64 or remove encoder_weights",
        )
    return config


def _parse_source(raw: Any, source: str, key: str, base: Path | None) -> DataSourceConfig | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = {"recipe": raw} if raw.endswith((".yaml", ".yml")) else {"shards": raw}
    raw = _check_keys(raw, [f.name for f in dataclasses.fields(DataSourceConfig)], source, key)
    recipe = raw.get("recipe")
    shards = raw.get("shards")
    if (recipe is None) == (shards is None):
        raise _fail(source, key, "expected exactly one of 'recipe' (a recipe YAML) or 'shards' (shard URLs)")

    if recipe is not None:
        recipe = _text(recipe, source, f"{key}.recipe")
        # A value without a YAML suffix names a recipe bundled with fergen, such as demo.
        if recipe.endswith((".yaml", ".yml")):
            recipe = _local_path(recipe, base)
    if shards is not None:
        if isinstance(shards, str):
            shards = [shards]
        if not isinstance(shards, Sequence) or not shards:
            raise _fail(source, f"{key}.shards", f"expected a URL or a non-empty list of URLs, got {shards!r}")
        shards = tuple(_local_path(_text(url, source, f"{key}.shards"), base) for url in shards)

    data_root = raw.get("data_root")
    if data_root is not None:
        data_root = _local_path(_text(data_root, source, f"{key}.data_root"), base)

    split = _choice(raw.get("split", "all"), source, f"{key}.split", ("all", "train", "val"))
    val_fraction = _number(raw.get("val_fraction", 0.1), source, f"{key}.val_fraction")
    if val_fraction >= 1.0:
        raise _fail(source, f"{key}.val_fraction", f"expected a number in [0, 1), got {val_fraction!r}")
    length = raw.get("length")
    if length is not None:
        length = _integer(length, source, f"{key}.length", 1)
    fold_part = raw.get("fold_part")
    if fold_part is not None:
        fold_part = _choice(fold_part, source, f"{key}.fold_part", ("train", "test"))
    shuffle_buffer = _integer(raw.get("shuffle_buffer", 1000), source, f"{key}.shuffle_buffer", 0)

    recipe_only = {"split": split != "all", "length": length is not None, "fold_part": fold_part is not None}
    for name, is_set in recipe_only.items():
        if shards is not None and is_set:
            raise _fail(source, f"{key}.{name}", "applies to recipes only; remove it for shards")
    return DataSourceConfig(
        recipe=recipe,
        shards=shards,
        data_root=data_root,
        split=split,
        val_fraction=val_fraction,
        length=length,
        fold_part=fold_part,
        shuffle_buffer=shuffle_buffer,
    )


def _parse_data(raw: Any, source: str, base: Path | None) -> DataConfig:
    raw = _check_keys(raw, ("train", "val", "num_workers"), source, "data")
    return DataConfig(
        train=_parse_source(raw.get("train"), source, "data.train", base),
        val=_parse_source(raw.get("val"), source, "data.val", base),
        num_workers=_integer(raw.get("num_workers", 2), source, "data.num_workers", 0),
    )


def _parse_optim(raw: Any, source: str) -> OptimConfig:
    raw = _check_keys(raw, [f.name for f in dataclasses.fields(OptimConfig)], source, "optim")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        key = f"optim.{name}"
        if name == "optimizer":
            values[name] = _choice(value, source, key, ("adam", "adamw", "sgd"))
        elif name == "schedule":
            values[name] = _choice(value, source, key, ("constant", "cosine"))
        elif name in ("batch_size", "epochs"):
            values[name] = _integer(value, source, key, 1)
        elif name == "lr":
            values[name] = _number(value, source, key, strict=True)
        elif name == "weight_decay":
            values[name] = _number(value, source, key)
        elif name == "grad_clip_norm":
            values[name] = None if value is None else _number(value, source, key, strict=True)
        elif name == "betas":
            if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
                raise _fail(source, key, f"expected [beta1, beta2], got {value!r}")
            betas = tuple(_number(item, source, key) for item in value)
            if not all(beta < 1.0 for beta in betas):
                raise _fail(source, key, f"expected both betas in [0, 1), got {value!r}")
            values[name] = betas
    return OptimConfig(**values)


def _parse_loss(raw: Any, source: str) -> LossConfig:
    raw = _check_keys(raw, [f.name for f in dataclasses.fields(LossConfig)], source, "loss")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        key = f"loss.{name}"
        if name == "classification":
            values[name] = _choice(value, source, key, ("ce", "bce"))
        elif name == "class_means":
            values[name] = _choice(value, source, key, ("batch", "running"))
        elif name == "sigma":
            values[name] = _number(value, source, key, strict=True)
        elif name == "momentum":
            momentum = _number(value, source, key, strict=True)
            if momentum > 1.0:
                raise _fail(source, key, f"expected a number in (0, 1], got {value!r}")
            values[name] = momentum
        elif name == "priors":
            if value is None:
                values[name] = None
                continue
            if not isinstance(value, Sequence) or isinstance(value, str) or not value:
                raise _fail(source, key, f"expected a list of positive numbers, one a class, got {value!r}")
            values[name] = tuple(_number(item, source, key, strict=True) for item in value)
        else:
            values[name] = _number(value, source, key)
    return LossConfig(**values)


def _parse_runtime(raw: Any, source: str) -> RuntimeConfig:
    raw = _check_keys(raw, [f.name for f in dataclasses.fields(RuntimeConfig)], source, "runtime")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        key = f"runtime.{name}"
        if name == "device":
            text = _text(value, source, key)
            if text not in ("auto", "cpu", "cuda") and not text.startswith("cuda:"):
                raise _fail(source, key, f"expected auto, cpu, cuda or cuda:N, got {value!r}")
            values[name] = text
        elif name == "amp":
            values[name] = _choice(value, source, key, ("auto", "bf16", "off"))
        elif name == "channels_last":
            # YAML 1.1 reads a bare on/off as a boolean.
            if isinstance(value, bool):
                value = "on" if value else "off"
            values[name] = _choice(value, source, key, ("auto", "on", "off"))
        elif name == "deterministic":
            values[name] = _flag(value, source, key)
        elif name == "keep_checkpoints":
            values[name] = _integer(value, source, key, 1)
        elif name == "steps_per_epoch":
            values[name] = None if value is None else _integer(value, source, key, 1)
    return RuntimeConfig(**values)


def config_from_dict(raw: Any, source: str = "<config>", base: Path | None = None) -> TrainConfig:
    """Validate a plain mapping and build a :class:`TrainConfig`.

    Args:
        raw: Mapping as read from YAML or from :func:`config_to_dict`.
        source: Name used in error messages, usually the file path.
        base: Folder that relative paths are resolved against; ``None`` keeps them.

    Raises:
        ConfigError: on an unknown key or an invalid value.
    """
    raw = _check_keys(raw, [f.name for f in dataclasses.fields(TrainConfig)], source, "")
    return TrainConfig(
        seed=_integer(raw.get("seed", 0), source, "seed", 0),
        model=_parse_model(raw.get("model"), source, base),
        data=_parse_data(raw.get("data"), source, base),
        optim=_parse_optim(raw.get("optim"), source),
        loss=_parse_loss(raw.get("loss"), source),
        runtime=_parse_runtime(raw.get("runtime"), source),
    )


def check_class_count(config: TrainConfig, class_names: Sequence[str], source: str = "<config>") -> None:
    """Check the config values whose length must match the number of classes in the training data.

    The class count is known only once the data is opened, so
    :func:`config_from_dict` cannot check this.

    Raises:
        ConfigError: if ``loss.priors`` does not have one value per class.
    """
    priors = config.loss.priors
    if priors is not None and len(priors) != len(class_names):
        raise _fail(
            source,
            "loss.priors",
            f"expected {len(class_names)} values, one per class ({', '.join(class_names)}), "
            f"got {len(priors)}: {list(priors)}; list one prior per class in that order, "
            "or remove loss.priors for uniform priors",
        )


def bundled_configs() -> dict[str, Path]:
    """Return the training configs shipped in ``fergen_train/configs/``, by name (e.g. ``lfw-demo``)."""
    return {path.stem: path for path in sorted(BUNDLED_CONFIG_DIR.glob("*.yaml"))}


def find_config(name_or_path: str | Path) -> Path:
    """Return the config file for a path, or for the name of a bundled config.

    Raises:
        FileNotFoundError: if ``name_or_path`` is neither a file nor a bundled config name.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = bundled_configs()
    if str(name_or_path) in bundled:
        return bundled[str(name_or_path)]
    raise FileNotFoundError(
        f"training config {str(path)!r} not found; pass a YAML file or the name of a bundled config "
        f"({', '.join(bundled) or 'none'})"
    )


def load_config(name_or_path: str | Path) -> TrainConfig:
    """Read and validate a YAML training config (a file, or a bundled config name such as ``lfw-demo``).

    Raises:
        FileNotFoundError: if the file does not exist and no bundled config has that name.
        ConfigError: if the YAML is malformed or a key or value is invalid.
    """
    path = find_config(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML: {error}") from error
    return config_from_dict(raw, source=str(path), base=path.resolve().parent)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """Convert a config to plain dicts, lists, strings and numbers.

    The result is safe for ``torch.load(weights_only=True)``, JSON and YAML, and
    :func:`config_from_dict` turns it back into an equal config.
    """
    return _plain(dataclasses.asdict(config))


def replace_section(config: TrainConfig, section: str, **changes: Any) -> TrainConfig:
    """Return a copy of ``config`` with fields of one section replaced.

    Example: ``replace_section(config, "optim", epochs=2)``.
    """
    updated = dataclasses.replace(getattr(config, section), **changes)
    return dataclasses.replace(config, **{section: updated})
