"""Module attributes imported on first use (PEP 562), for packages whose public names live in
heavier submodules: ``__getattr__ = lazy_attributes(__name__, {"Name": "pkg.mod"}, globals())``."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(
    package: str, home_of: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` importing ``name`` from its module in ``home_of`` on first use
    and keeping it in ``namespace`` (the package's globals), so later lookups cost nothing."""

    def __getattr__(name: str) -> Any:
        module = home_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
