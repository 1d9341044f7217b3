"""beamlink: Python nodes for Erlang/Elixir clusters.

The public face: ``from beamlink import Node, Process, GenServer, Atom, Pid, ...``. Everything a
program needs is exported here (see ``__all__``); the layer packages below are the
implementation, documented in docs/architecture.md. Layers, lowest first (a layer never imports
one above it): ``etf`` (term codec) -> ``epmd`` / ``distribution`` (EPMD, handshake, frames) ->
``connection`` -> ``node`` (process runtime < kernel services < `Node`) -> ``cluster``
(discovery, ``beamlink.cluster``) -> ``cli``.
"""

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
