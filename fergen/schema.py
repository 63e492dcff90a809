"""Build frozen dataclasses from plain YAML data, with errors that name the key.

The recipe classes in :mod:`fergen.recipe` declare their fields with type
hints and, where a value has limits, with :func:`spec` metadata. This module
turns nested mappings into those classes, checks every value, and turns the
classes back into plain data for the canonical dump.

Supported field types: ``bool``, ``int``, ``float``, ``str``, ``Optional[T]``,
``tuple[T, ...]``, ``tuple[T1, T2]``, ``Literal[...]`` and nested dataclasses.
A dataclass may define ``check(self, key)`` for rules that span fields; it
raises :class:`~fergen.errors.RecipeError` itself. A dataclass with a
``from_text(text, key)`` function also accepts a short string form, which
``from_text`` turns into the mapping that is then validated as usual.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from typing import Any, Callable, Literal, Mapping, TypeVar, Union

from .errors import RecipeError

_MISSING = dataclasses.MISSING
_Class = TypeVar("_Class", bound=type)


def spec(default: Any = _MISSING, *, low: float | None = None, high: float | None = None,
         help: str = "", default_factory: Any = _MISSING) -> Any:
    """Declare a dataclass field with an inclusive range and a help text.

    Args:
        default: Default value; omit to make the key required.
        low: Smallest allowed value (numbers, and every item of a tuple of numbers).
        high: Largest allowed value.
        help: One line shown in error messages and ``fergen recipe show --help-keys``.
        default_factory: Factory for mutable defaults.
    """
    metadata = {"low": low, "high": high, "help": help}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def join_key(parent: str, child: str | int) -> str:
    """Return the dotted key path of ``child`` below ``parent`` (``render.scale_range[0]``)."""
    if isinstance(child, int):
        return f"{parent}[{child}]"
    return f"{parent}.{child}" if parent else child


def fail(key: str, value: Any, expected: str, fix: str) -> typing.NoReturn:
    """Raise a :class:`RecipeError` for ``key`` with the value, what is allowed and the fix."""
    raise RecipeError(f"recipe key '{key}': invalid value {value!r}; expected {expected}. {fix}")


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if hint is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_type_name(args[0])}"
        return "a list [" + ", ".join(_type_name(a) for a in args) + "]"
    if dataclasses.is_dataclass(hint):
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        hint, getattr(hint, "__name__", str(hint)))


def _check_range(key: str, value: Any, low: float | None, high: float | None) -> None:
    if isinstance(value, tuple):
        for index, item in enumerate(value):
            _check_range(join_key(key, index), item, low, high)
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if (low is not None and value < low) or (high is not None and value > high):
        low_text = "-inf" if low is None else f"{low:g}"
        high_text = "inf" if high is None else f"{high:g}"
        fail(key, value, f"a value in [{low_text}, {high_text}]",
             f"Set '{key}' inside that range.")


def _parse_float_text(text: str, key: str) -> Any:
    """Return ``float(text)`` for numbers that YAML 1.1 leaves as strings (``1e-3``), else ``text``."""
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        fail(key, text, "a finite number", f"Write '{key}' as a finite number.")
    return number


def convert(hint: Any, value: Any, key: str) -> Any:
    """Convert plain YAML ``value`` to the type ``hint``, raising on mismatch."""
    origin = typing.get_origin(hint)

    if origin in (Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return convert(arg, value, key)
            except RecipeError as error:
                errors.append(error)
        if len(errors) == 1:
            raise errors[0]
        fail(key, value, _type_name(hint), f"Change '{key}' to {_type_name(hint)}.")

    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            hint_text = f" Did you mean {close[0]!r}?" if close else ""
            fail(key, value, _type_name(hint), f"Use one of the listed values.{hint_text}")
        return value

    if origin is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            fail(key, value, _type_name(hint), f"Write '{key}' as a YAML list.")
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert(args[0], item, join_key(key, i)) for i, item in enumerate(value))
        if len(value) != len(args):
            fail(key, value, _type_name(hint), f"Give exactly {len(args)} items in '{key}'.")
        return tuple(convert(arg, item, join_key(key, i)) for i, (arg, item) in enumerate(zip(args, value)))

    if dataclasses.is_dataclass(hint):
        from_text = getattr(hint, "from_text", None)
        if isinstance(value, str) and callable(from_text):
            value = from_text(value, key)
        return build(hint, value, key)

    if hint is bool:
        if not isinstance(value, bool):
            fail(key, value, "true or false", f"Write '{key}: true' or '{key}: false'.")
        return value

    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            fail(key, value, "an integer", f"Write '{key}' as a whole number.")
        return value

    if hint is float:
        if isinstance(value, str):
            value = _parse_float_text(value, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(key, value, "a number", f"Write '{key}' as a number, e.g. 0.5.")
        return float(value)

    if hint is str:
        if not isinstance(value, str):
            fail(key, value, "a string", f"Quote the value of '{key}'.")
        return value

    if hint is Any:
        return value

    raise TypeError(f"unsupported recipe field type {hint!r} at '{key}'")


def build(cls: type, data: Any, key: str = "") -> Any:
    """Build dataclass ``cls`` from mapping ``data``; ``key`` is its path in the recipe.

    Raises:
        RecipeError: on an unknown or missing key, a wrong type or a value out of range.
    """
    where = f"'{key}'" if key else "the recipe top level"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        fail(key or "<top level>", data, "a mapping of keys to values",
             f"Write {where} as 'key: value' lines.")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for name in data:
        if name not in fields:
            close = difflib.get_close_matches(str(name), list(fields), n=1)
            suggestion = f" Did you mean '{close[0]}'?" if close else ""
            raise RecipeError(
                f"recipe key '{join_key(key, str(name))}': unknown key. Allowed keys in {where}: "
                f"{', '.join(sorted(fields))}.{suggestion}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in fields.items():
        child = join_key(key, name)
        if name not in data:
            if field.default is _MISSING and field.default_factory is _MISSING:
                raise RecipeError(
                    f"recipe key '{child}': missing; expected {_type_name(hints[name])}. "
                    f"Add '{name}:' to {where}. {field.metadata.get('help', '')}".rstrip())
            continue
        value = convert(hints[name], data[name], child)
        _check_range(child, value, field.metadata.get("low"), field.metadata.get("high"))
        values[name] = value
    instance = cls(**values)
    check = getattr(instance, "check", None)
    if callable(check):
        check(key)
    return instance


def to_plain(value: Any) -> Any:
    """Turn dataclasses and tuples into dicts and lists for YAML or JSON output."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [to_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    return value


def check_interval(key: str, interval: tuple[float, float]) -> None:
    """Raise unless ``interval`` is ``[low, high]`` with ``low <= high``."""
    if interval[0] > interval[1]:
        fail(key, list(interval), "[low, high] with low <= high", f"Swap the two values of '{key}'.")


def _optional_dataclass(hint: Any) -> Any:
    """Return the dataclass of ``hint`` or of ``Optional[hint]``, else ``None``."""
    if dataclasses.is_dataclass(hint):
        return hint
    if typing.get_origin(hint) in (Union, types.UnionType):
        classes = [arg for arg in typing.get_args(hint) if dataclasses.is_dataclass(arg)]
        if len(classes) == 1:
            return classes[0]
    return None


def _bound_text(bound: float | None, missing: str) -> str:
    if bound is None:
        return missing
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """Return (key, type, default, help) rows for every key of ``cls``, nested keys dotted."""
    rows = []
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        key = join_key(prefix, field.name)
        hint = hints[field.name]
        if field.default is not _MISSING:
            default = to_plain(field.default)
        elif field.default_factory is not _MISSING:
            default = None if dataclasses.is_dataclass(hint) else to_plain(field.default_factory())
        else:
            default = "(required)"
        nested = _optional_dataclass(hint)
        if nested is not None:
            rows.append((key, "mapping" if nested is hint else "mapping or null", "",
                         field.metadata.get("help", "")))
            rows.extend(describe(nested, key))
            continue
        low, high = field.metadata.get("low"), field.metadata.get("high")
        limits = ""
        if low is not None or high is not None:
            limits = f" in [{_bound_text(low, '-inf')}, {_bound_text(high, 'inf')}]"
        if default == "(required)" or default == "":
            shown = "(required)"
        else:
            shown = "" if default is None else json.dumps(default)
        rows.append((key, _type_name(hint) + limits, shown, field.metadata.get("help", "")))
    return rows


def registrar(registry: dict[str, type]) -> Callable[[str], Callable[[_Class], _Class]]:
    """Return a ``register(kind)`` class decorator that adds config classes to ``registry``."""
    def register(kind: str) -> Callable[[_Class], _Class]:
        def decorate(cls: _Class) -> _Class:
            registry[kind] = cls
            return cls
        return decorate
    return register
