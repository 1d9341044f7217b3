"""The node layer: `Node` (a distributed Erlang node) composed of the process runtime
(`runtime/`) and the kernel services (`kernel/`: net_kernel, rex, global, pg), plus the gen_server
and RPC clients. See docs/node.md and docs/architecture.md.

Users import from `beamlink` (``from beamlink import Node, Process, GenServer``); the names
below stay importable from ``beamlink.node`` for code written before that.
"""

from beamlink.node.errors import (
    NameInUse,
    NodeError,
    NodeStartError,
    ProcessExit,
    ReceiveTimeout,
    UnknownName,
)
from beamlink.node.genserver import gen_reply
from beamlink.node.monitors import NodeEvent, NodeEventStream
from beamlink.node.node import Node, current_node, resolve_dist_port, resolve_node_name
from beamlink.node.runtime import (
    Mailbox,
    Process,
    ProcessRuntime,
    current_process,
    exception_reason,
)

__all__ = [
    "Mailbox",
    "NameInUse",
    "Node",
    "NodeError",
    "NodeEvent",
    "NodeEventStream",
    "NodeStartError",
    "Process",
    "ProcessExit",
    "ProcessRuntime",
    "ReceiveTimeout",
    "UnknownName",
    "current_node",
    "current_process",
    "exception_reason",
    "gen_reply",
    "resolve_dist_port",
    "resolve_node_name",
]
