"""Which asyncio event loop runs a node: uvloop when it is installed (``pip install beamlink[fast]``)
and not refused with ``BEAMLINK_EVENT_LOOP=asyncio``, asyncio's own loop otherwise.

``beamlink start`` (and the other CLI commands) run on `run`; a library user opts in the same way,
``beamlink.eventloop.run(main())`` instead of ``asyncio.run(main())``. Nothing in beamlink needs
uvloop: it is a measured speed-up of the per-iteration cost of the loop (docs/rpc.md, "What bounds
each figure"), never a requirement.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Coroutine
from typing import Any, TypeVar

from beamlink.settings import EVENT_LOOP

__all__ = ["ENV", "loop_name", "run"]

T = TypeVar("T")

ENV = EVENT_LOOP.variables[0]
"""``asyncio`` keeps asyncio's loop even when uvloop is installed; ``uvloop`` requires uvloop."""


def _uvloop() -> Any:
    """The uvloop module when it is installed and wanted, else None (a bad value of
    ``BEAMLINK_EVENT_LOOP`` raises `SettingsError`)."""
    choice = EVENT_LOOP.require().value
    if choice == "asyncio":
        return None
    try:
        return importlib.import_module("uvloop")
    except ImportError:
        if choice == "uvloop":
            raise ImportError(
                f"{ENV}=uvloop but uvloop is not installed: pip install 'beamlink[fast]'"
            ) from None
        return None


def loop_name() -> str:
    """``"uvloop"`` or ``"asyncio"``: the loop `run` would use."""
    return "asyncio" if _uvloop() is None else "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on uvloop when available (see the module docstring)."""
    uvloop = _uvloop()
    if uvloop is None:
        return asyncio.run(main)
    result: T = uvloop.run(main)
    return result
