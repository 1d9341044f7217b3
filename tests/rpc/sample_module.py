"""Functions the RPC tests call by name: sync, async, raising, and an unencodable result."""

from __future__ import annotations

import asyncio
from typing import Any

from beamlink.etf import Atom
from beamlink.node.rpc import ErlangException


def identity(x: Any) -> Any:
    return x


def add(a: int, b: int) -> int:
    return a + b


async def slow_add(a: int, b: int, delay: float = 0.0) -> int:
    await asyncio.sleep(delay)
    return a + b


def fail(message: bytes) -> None:
    raise ValueError(message.decode())


def nested_fail() -> None:
    _inner()


def _inner() -> None:
    raise KeyError("missing")


def throw(term: Any) -> None:
    raise ErlangException(Atom("throw"), term)


def exit_with(reason: Any) -> None:
    raise ErlangException(Atom("exit"), reason)


def unencodable() -> object:
    return object()


def sys_exit() -> None:
    raise SystemExit(3)


class NotCallable:
    pass


CONSTANT = 42


RECORDED: list[Any] = []


def record(term: Any) -> Atom:
    RECORDED.append(term)
    return Atom("ok")
