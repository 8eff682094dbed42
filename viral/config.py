"""Build typed, frozen config dataclasses from plain YAML data, failing early with one clear line.

Every stage's config is a dataclass; `build(cls, raw, where)` checks keys, types and allowed names
recursively, so a typo in params.yaml fails before any work starts with a message such as
``params.yaml: train.lr: expected float, got 'fast'``.
"""
from __future__ import annotations

import dataclasses
import operator
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml


class ConfigError(ValueError):
    """A params problem, always reported as one line naming the key."""


def choices(names, default=dataclasses.MISSING, *, default_factory=dataclasses.MISSING):
    """A str field restricted to `names` (a collection, or a callable returning one, for registries)."""
    kwargs: dict[str, Any] = {"metadata": {"choices": names}}
    if default is not dataclasses.MISSING:
        kwargs["default"] = default
    if default_factory is not dataclasses.MISSING:
        kwargs["default_factory"] = default_factory
    return dataclasses.field(**kwargs)


_COMPARISONS = {"ge": (">=", operator.ge), "gt": (">", operator.gt), "le": ("<=", operator.le),
                "lt": ("<", operator.lt)}


@dataclasses.dataclass(frozen=True)
class Range:
    """Allowed interval of a numeric field; None = unbounded on that side. `build` checks it."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    why: str = ""  # said after the interval in the error, e.g. "every user must survive 5-core"

    def limits(self) -> list[tuple[str, float]]:
        return [(name, getattr(self, name)) for name in _COMPARISONS if getattr(self, name) is not None]

    def contains(self, value) -> bool:
        return all(_COMPARISONS[name][1](value, limit) for name, limit in self.limits())

    def describe(self) -> str:
        interval = " and ".join(f"{_COMPARISONS[name][0]} {limit if isinstance(limit, int) else f'{limit:g}'}"
                                for name, limit in self.limits())
        return f"{interval} ({self.why})" if self.why else interval


def bounded(default=dataclasses.MISSING, *, ge=None, gt=None, le=None, lt=None, why: str = ""):
    """A numeric field whose value must lie in the given interval (checked by `build`, one-line error).

    A None value (where the type allows it, e.g. "use the model's own value") is not range-checked."""
    kwargs: dict[str, Any] = {"metadata": {"range": Range(ge=ge, gt=gt, le=le, lt=lt, why=why)}}
    if default is not dataclasses.MISSING:
        kwargs["default"] = default
    return dataclasses.field(**kwargs)


@dataclasses.dataclass(frozen=True)
class Pattern:
    """The form every string of a field must have (the whole string matches `regex`); `build` checks it."""

    regex: str
    expected: str  # the accepted forms, in words, for the error line

    def matches(self, value: str) -> bool:
        return re.fullmatch(self.regex, value) is not None


def matching(regex: str, expected: str, default=dataclasses.MISSING, *, default_factory=dataclasses.MISSING):
    """A str field (or list of str, or mapping to str) whose every string must fully match `regex`."""
    kwargs: dict[str, Any] = {"metadata": {"pattern": Pattern(regex, expected)}}
    if default is not dataclasses.MISSING:
        kwargs["default"] = default
    if default_factory is not dataclasses.MISSING:
        kwargs["default_factory"] = default_factory
    return dataclasses.field(**kwargs)


def torch_device(default: str = "auto"):
    """A torch device setting: auto (CUDA when available), cpu, cuda or cuda:N."""
    return matching(r"auto|cpu|cuda(:\d+)?", "auto, cpu, cuda or cuda:N", default)


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return f"mapping of {_type_name(typing.get_args(tp)[1])}"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _convert(tp, value, where: str, base=None):
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where, base if isinstance(base, tp) else None)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{where}: got {value!r}, expected one of {', '.join(map(str, allowed))}")
        return value
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, where)
            except ConfigError:
                continue  # try the next alternative; the message below names them all
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
        (item_tp, *_) = typing.get_args(tp)
        items = [_convert(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
        key_tp, value_tp = typing.get_args(tp)
        return {str(k): _convert(value_tp, v, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected bool (true/false), got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected int, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected float, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected str, got {value!r}")
        return value
    raise TypeError(f"{where}: unsupported config type {tp!r}")


def field_default(f: dataclasses.Field):
    """The default value of a dataclass field (calling its factory), or MISSING."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _strings(value, where: str) -> list[tuple[str, str]]:
    """(key path, string) of a str, a list of str or a mapping to str."""
    if isinstance(value, dict):
        return [(f"{where}.{key}", item) for key, item in value.items()]
    if isinstance(value, (list, tuple)):
        return [(f"{where}[{index}]", item) for index, item in enumerate(value)]
    return [(where, value)]


def build(cls, raw, where: str = "", base=None):
    """Instantiate dataclass `cls` from mapping `raw`; `where` is the dotted key path used in errors.

    Keys absent from `raw` keep their value in `base` (an instance of `cls`) when given, else the field
    default; a nested section therefore overrides only the keys it lists, on top of the default
    instance of that field (e.g. a model's own training point).
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'top level'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}unknown key {unknown[0]!r}; valid keys: {', '.join(sorted(known))}")
    values = {}
    for name, f in known.items():
        key_where = f"{where}.{name}" if where else name
        default = getattr(base, name) if base is not None else field_default(f)
        if name not in raw:
            if default is dataclasses.MISSING:
                raise ConfigError(f"{key_where}: missing required key")
            values[name] = default
            continue
        value = _convert(hints[name], raw[name], key_where, default)
        bounds = f.metadata.get("range")
        if bounds is not None and value is not None and not bounds.contains(value):
            raise ConfigError(f"{key_where}: expected {bounds.describe()}, got {value!r}")
        allowed = f.metadata.get("choices")
        if allowed is not None and value is not None:
            allowed = sorted(allowed() if callable(allowed) else allowed)
            for item in value if isinstance(value, list) else [value]:
                if item not in allowed:
                    raise ConfigError(f"{key_where}: unknown name {item!r}; valid: {', '.join(allowed)}")
        pattern = f.metadata.get("pattern")
        if pattern is not None and value is not None:
            for item_where, item in _strings(value, key_where):
                if not pattern.matches(item):
                    raise ConfigError(f"{item_where}: expected {pattern.expected}, got {item!r}")
        values[name] = value
    try:
        return cls(**values)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}" if where else str(err)) from None


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{line} invalid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data
