"""beamlink: Python nodes for Erlang/Elixir clusters.

The public face: ``from beamlink import Node, Process, GenServer, Atom, Pid, ...``. Everything a
program needs is exported here (see ``__all__``); the layer packages below are the
implementation, documented in docs/architecture.md. Layers, lowest first (a layer never imports
one above it): ``etf`` (term codec) -> ``epmd`` / ``distribution`` (EPMD, handshake, frames) ->
``connection`` -> ``node`` (process runtime < kernel services < `Node`) -> ``cluster``
(discovery, ``beamlink.cluster``) -> ``cli``.

Importing ``beamlink`` is cheap: the term types, errors and version load at once, the node API
on first use (PEP 562), so code that needs only a low layer (e.g. ``beamlink.epmd.protocol``)
does not pay for asyncio and the node runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from beamlink._lazy import lazy_attributes
from beamlink._version import __version__
from beamlink.errors import (
    BeamlinkError,
    ConfigurationError,
    EpmdError,
    RemoteProtocolError,
)
from beamlink.etf import (
    Atom,
    BitString,
    Charlist,
    Export,
    Fun,
    ImproperList,
    Pid,
    Port,
    Reference,
    decode,
    encode,
)

if TYPE_CHECKING:
    from beamlink.node.errors import (
        NameInUse,
        NodeError,
        NodeStartError,
        ProcessExit,
        ReceiveTimeout,
        UnknownName,
    )
    from beamlink.node.genserver import NOREPLY, CallError, CallTimeout, From, GenServer, gen_reply
    from beamlink.node.kernel.pg import PgEvent, PgMonitor, PgScope
    from beamlink.node.monitors import NodeEvent, NodeEventStream
    from beamlink.node.node import Node, current_node
    from beamlink.node.rpc import (
        ErlangException,
        NoConnection,
        RemoteDied,
        RemoteException,
        RpcError,
        RpcRefused,
        RpcTimeout,
    )
    from beamlink.node.runtime import (
        Executor,
        Process,
        cpu_bound,
        current_process,
        exception_reason,
        on_loop,
    )

_LAZY: dict[str, str] = {
    "CallError": "beamlink.node.genserver",
    "CallTimeout": "beamlink.node.genserver",
    "ErlangException": "beamlink.node.rpc",
    "Executor": "beamlink.node.runtime",
    "From": "beamlink.node.genserver",
    "GenServer": "beamlink.node.genserver",
    "NOREPLY": "beamlink.node.genserver",
    "NameInUse": "beamlink.node.errors",
    "NoConnection": "beamlink.node.rpc",
    "Node": "beamlink.node.node",
    "NodeError": "beamlink.node.errors",
    "NodeEvent": "beamlink.node.monitors",
    "NodeEventStream": "beamlink.node.monitors",
    "NodeStartError": "beamlink.node.errors",
    "PgEvent": "beamlink.node.kernel.pg",
    "PgMonitor": "beamlink.node.kernel.pg",
    "PgScope": "beamlink.node.kernel.pg",
    "Process": "beamlink.node.runtime",
    "ProcessExit": "beamlink.node.errors",
    "ReceiveTimeout": "beamlink.node.errors",
    "RemoteDied": "beamlink.node.rpc",
    "RemoteException": "beamlink.node.rpc",
    "RpcError": "beamlink.node.rpc",
    "RpcRefused": "beamlink.node.rpc",
    "RpcTimeout": "beamlink.node.rpc",
    "UnknownName": "beamlink.node.errors",
    "cpu_bound": "beamlink.node.runtime",
    "current_node": "beamlink.node.node",
    "current_process": "beamlink.node.runtime",
    "exception_reason": "beamlink.node.runtime",
    "gen_reply": "beamlink.node.genserver",
    "on_loop": "beamlink.node.runtime",
}


__getattr__ = lazy_attributes(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "NOREPLY",
    "Atom",
    "BeamlinkError",
    "BitString",
    "CallError",
    "CallTimeout",
    "Charlist",
    "ConfigurationError",
    "EpmdError",
    "ErlangException",
    "Executor",
    "Export",
    "From",
    "Fun",
    "GenServer",
    "ImproperList",
    "NameInUse",
    "NoConnection",
    "Node",
    "NodeError",
    "NodeEvent",
    "NodeEventStream",
    "NodeStartError",
    "PgEvent",
    "PgMonitor",
    "PgScope",
    "Pid",
    "Port",
    "Process",
    "ProcessExit",
    "ReceiveTimeout",
    "Reference",
    "RemoteDied",
    "RemoteException",
    "RemoteProtocolError",
    "RpcError",
    "RpcRefused",
    "RpcTimeout",
    "UnknownName",
    "__version__",
    "cpu_bound",
    "current_node",
    "current_process",
    "decode",
    "encode",
    "exception_reason",
    "gen_reply",
    "on_loop",
]
