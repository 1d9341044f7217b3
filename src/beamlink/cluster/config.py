"""Strict loading of TOML configuration into frozen dataclasses; ``ConfigError``.

Generic: nothing here knows about topologies (their schema is ``beamlink.cluster.schema``).
``read_toml`` reads a file, ``check_sections`` rejects unknown top-level sections, and ``build``
turns one table into a dataclass by its type hints: an unknown key, a missing required key or a
value of the wrong type raises ``ConfigError`` naming the key, and a misspelt key comes with the
likely intended one (``poll_interval`` -> ``polling_interval``). A key listed as a callable takes
a callable or ``"package.module:attribute"``. No I/O beyond reading the file handed to
``read_toml``.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
import types
import typing
from collections.abc import Collection, Mapping
from typing import Any, Literal, TypeVar

from beamlink.errors import ConfigurationError

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

T = TypeVar("T")


class ConfigError(ConfigurationError, ValueError):
    """A configuration problem, naming the topology and key it is about."""

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        topology: str | None = None,
        suggestion: str | None = None,
    ) -> None:
        self.message = message
        self.key = key
        self.topology = topology
        self.suggestion = suggestion
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.topology is not None:
            where.append(f"topology {self.topology!r}")
        if self.key is not None:
            where.append(f"key {self.key!r}")
        text = (": ".join(where) + ": " if where else "") + self.message
        if self.suggestion is not None:
            text += f" (did you mean {self.suggestion!r}?)"
        return text

    def in_topology(self, topology: str) -> ConfigError:
        """The same error, attributed to ``topology``."""
        return ConfigError(
            self.message, key=self.key, topology=topology, suggestion=self.suggestion
        )


def suggest(word: str, candidates: Collection[str]) -> str | None:
    import difflib  # only for error messages: not on every start's import path

    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if origin is tuple:
        return f"a list of {_type_name(typing.get_args(hint)[0])}"
    if hint is type(None):
        return "none"
    return {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}.get(
        hint, str(hint)
    )


_MISMATCH = object()


def _coerce(value: Any, hint: Any) -> Any:
    """``value`` converted to the field type ``hint``, or ``_MISMATCH``."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return value if value in typing.get_args(hint) and isinstance(value, str) else _MISMATCH
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if arg is type(None):
                continue
            converted = _coerce(value, arg)
            if converted is not _MISMATCH:
                return converted
        return _MISMATCH
    if origin is tuple:
        if not isinstance(value, list | tuple):
            return _MISMATCH
        items = [_coerce(item, typing.get_args(hint)[0]) for item in value]
        return _MISMATCH if any(i is _MISMATCH for i in items) else tuple(items)
    if hint is bool:
        return value if isinstance(value, bool) else _MISMATCH
    if hint is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _MISMATCH
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return float(value) if ok else _MISMATCH
    if hint is str:
        return value if isinstance(value, str) else _MISMATCH
    return _MISMATCH


def load_callable(key: str, value: Any) -> Any:
    """A hook is a callable, or ``"package.module:attribute"`` naming one."""
    if callable(value):
        return value
    if not isinstance(value, str) or value.count(":") != 1:
        raise ConfigError('must be a callable or "package.module:function"', key=key)
    module_name, attribute = value.split(":")
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load hook {value!r}: {exc}", key=key) from None
    if not callable(target):
        raise ConfigError(f"{value!r} is not callable", key=key)
    return target




def build(
    cls: type[T], table: Mapping[str, Any], *, what: str, callables: Collection[str] = ()
) -> T:
    """The dataclass ``cls`` built from ``table``; ConfigError naming the key on any problem.

    ``what`` names the table's kind in messages (``"strategy 'dns_poll'"``); keys in
    ``callables`` go through ``load_callable`` instead of the type check.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key not in fields:
            raise ConfigError(f"unknown key for {what}", key=key, suggestion=suggest(key, fields))
        if key in callables:
            kwargs[key] = load_callable(key, value)
            continue
        converted = _coerce(value, hints[key])
        if converted is _MISMATCH:
            raise ConfigError(f"expected {_type_name(hints[key])}, got {value!r}", key=key)
        kwargs[key] = converted
    for key, spec in fields.items():
        required = spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING
        if required and key not in kwargs and spec.init:
            raise ConfigError(f"missing (required by {what})", key=key)
    return cls(**kwargs)


def check_sections(data: Mapping[str, Any], allowed: Collection[str]) -> None:
    """ConfigError for a top-level key of ``data`` not in ``allowed``."""
    for key in data:
        if key not in allowed:
            raise ConfigError(
                f"unknown top-level section; expected {', '.join(sorted(allowed))}",
                key=key,
                suggestion=suggest(key, allowed),
            )


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed TOML file at ``path``; ConfigError names the file when unreadable or invalid."""
    try:
        with open(path, "rb") as handle:
            data: dict[str, Any] = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {os.fspath(path)!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{os.fspath(path)}: invalid TOML: {exc}") from None
    return data
