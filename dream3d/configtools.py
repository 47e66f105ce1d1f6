"""Typed config plumbing: dataclass <-> plain data, strict presets and `--set key=value` overrides.

Configs are ordinary (possibly frozen) dataclasses defined next to the code they configure.
This module only knows how to walk them, so no config is ever an untyped dict.
"""
from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any, TypeVar

import yaml

from dream3d.errors import UsageError

T = TypeVar("T")


def to_plain(value: Any) -> Any:
    """A dataclass tree as plain YAML-safe data (enums by value, tuples as lists)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (tuple, list)):
        return [to_plain(v) for v in value]
    return value


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert plain data to `annotation`, or raise UsageError naming `where`."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except UsageError as error:
                errors.append(str(error))
        raise UsageError(errors[0] if errors else f"{where}: cannot use {value!r}")
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise UsageError(f"{where}: expected a mapping of fields, got {value!r}")
        return from_plain(annotation, value, where)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        try:
            return annotation(value)
        except ValueError:
            choices = ", ".join(str(m.value) for m in annotation)
            raise UsageError(f"{where}: {value!r} is not one of {choices}") from None
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise UsageError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], where) for v in value)
        if len(value) != len(args):
            raise UsageError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, where) for v, a in zip(value, args))
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise UsageError(f"{where}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            return str(value)
        return value
    return value


def from_plain(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build `cls` from plain data; unknown keys are an error (presets are checked strictly)."""
    hints = _field_types(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UsageError(f"{where}: unknown field {unknown[0]!r} (known: {', '.join(sorted(names))})")
    kwargs = {name: _coerce(value, hints[name], f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except ValueError as err:  # the config's own check (__post_init__) of the values it was given
        raise UsageError(f"{where}: {err}") from None


def merge(config: T, data: dict[str, Any], where: str = "config", path: str = "") -> T:
    """A copy of `config` with the fields in `data` replaced (nested dataclasses merged).

    Errors read "<where>: <path of the field>: what is wrong", e.g.
    "--set train.steps=many: train.steps: expected an integer, got 'many'".
    """
    hints = _field_types(type(config))
    names = {f.name for f in dataclasses.fields(config)}
    changes: dict[str, Any] = {}
    for name, value in data.items():
        if name not in names:
            inside = f"{path}: " if path else ""
            raise UsageError(f"{where}: {inside}unknown field {name!r} (known: {', '.join(sorted(names))})")
        current = getattr(config, name)
        field_path = f"{path}.{name}" if path else name
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            changes[name] = merge(current, value, where, field_path)
        else:
            changes[name] = _coerce(value, hints[name], f"{where}: {field_path}")
    try:
        return dataclasses.replace(config, **changes)
    except ValueError as err:  # a config's own check (__post_init__) of the values it was given
        raise UsageError(f"{where}: {err}") from None


def parse_set_option(option: str) -> dict[str, Any]:
    """'sds.guidance_scale=50' -> {'sds': {'guidance_scale': 50}} (value parsed as YAML)."""
    key, sep, raw = option.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"--set {option!r}: expected key=value, e.g. --set sds.guidance_scale=50")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    nested: dict[str, Any] = {}
    cursor = nested
    parts = key.strip().split(".")
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return nested
