"""The node runtime: `Node` (a distributed Erlang node), its processes, links, monitors and the
net_kernel behaviour. See docs/node.md."""

from beamlink.node.errors import (
    NameInUse,
    NodeError,
    NodeStartError,
    ProcessExit,
    ReceiveTimeout,
    UnknownName,
)
from beamlink.node.mailbox import Mailbox
from beamlink.node.netkernel import NodeEvent, NodeEventStream, gen_reply
from beamlink.node.node import Node, current_node, resolve_dist_port, resolve_node_name
from beamlink.node.process import Process
from beamlink.node.runtime import ProcessRuntime, current_process, exception_reason

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
