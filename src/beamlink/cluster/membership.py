"""The membership interface the reconcile loop drives, and the pluggable hooks around it.

A strategy never connects anything itself: it only discovers node names. The reconcile loop turns
the discovered set into connects and disconnects through a ``Membership`` (``beamlink.node.Node``
satisfies it) or through user hooks, the counterpart of libcluster's ``connect``/``disconnect``/
``list_nodes`` MFAs. Hooks receive the membership as their first argument so a hook named in a
TOML file (``"package.module:function"``) can reach the node.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Membership(Protocol):
    """What the cluster layer needs from a node."""

    @property
    def name(self) -> str:
        """This node's full name (``name@host``)."""
        ...

    async def connect(self, name: str) -> bool:
        """Connect to ``name``; True when connected (already connected counts)."""
        ...

    async def disconnect(self, name: str) -> Any:
        """Drop the connection to ``name``."""
        ...

    def nodes(self) -> Iterable[str]:
        """Names of the nodes currently connected (visible ones)."""
        ...


ConnectHook = Callable[[Membership, str], Awaitable[bool] | bool]
DisconnectHook = Callable[[Membership, str], Awaitable[Any] | Any]
ListNodesHook = Callable[[Membership], Awaitable[Iterable[str]] | Iterable[str]]


async def _default_connect(membership: Membership, name: str) -> bool:
    return await membership.connect(name)


async def _default_disconnect(membership: Membership, name: str) -> bool:
    result = await membership.disconnect(name)
    return result is not False


def _default_list(membership: Membership) -> Iterable[str]:
    return membership.nodes()


async def _settle(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


@dataclass(frozen=True)
class MembershipOps:
    """The three operations of one topology: the membership's own or the user's hooks.

    Hooks may be plain or async callables; ``connect`` and ``disconnect`` report success by
    returning something other than ``False`` (a raised exception is a failure too).
    """

    membership: Membership
    connect_hook: ConnectHook | None = None
    disconnect_hook: DisconnectHook | None = None
    list_hook: ListNodesHook | None = None

    @property
    def self_name(self) -> str:
        return str(self.membership.name)

    async def connect(self, name: str) -> bool:
        hook = self.connect_hook or _default_connect
        return bool(await _settle(hook(self.membership, name)))

    async def disconnect(self, name: str) -> bool:
        hook = self.disconnect_hook or _default_disconnect
        return (await _settle(hook(self.membership, name))) is not False

    async def list_nodes(self) -> frozenset[str]:
        hook = self.list_hook or _default_list
        return frozenset(str(n) for n in await _settle(hook(self.membership)))
