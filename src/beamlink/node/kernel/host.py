"""The seam between a `Node` and its kernel services (net_kernel, rex, global, ...).

OTP runs ``net_kernel``, ``rex`` and ``global_name_server`` as separate processes under the kernel
supervisor; they reach the runtime only through BIFs. Here a service is an object satisfying
`KernelService`; the node installs each one, in order, with itself as the `ServiceHost`: the
BIFs a service may use (its node's name and creation, the process API, connections and node
monitoring) plus `ServiceHost.service` to find a sibling service by type when a service really
needs one (``global`` serves its RPC module through ``rex``). A service never sees the concrete
`Node` and never touches another service's attributes. A new service is one module plus one
entry in `beamlink.node.kernel.SERVICES`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from beamlink.etf import Atom, Pid, Reference
from beamlink.node.monitors import NodeCallback
from beamlink.node.runtime import Executor, Process, ProcessBody, Target

S = TypeVar("S")


@dataclass(frozen=True)
class KernelOptions:
    """The node's settings that kernel services read when they are created.

    ``rpc_allow``: the Python modules incoming RPC may call (None: any; see docs/rpc.md).
    """

    rpc_allow: Iterable[str] | None = None


class ServiceHost(Protocol):
    """What a kernel service may use of the node that runs it (`Node` satisfies it)."""

    @property
    def name(self) -> Atom:
        """The node's name."""
        ...

    @property
    def creation(self) -> int:
        """The creation in the node's pids and references."""
        ...

    @property
    def hidden(self) -> bool:
        """True for a hidden node (``-hidden``): it never joins global's sync."""
        ...

    @property
    def executor(self) -> Executor:
        """The worker pool synchronous user code runs in."""
        ...

    @property
    def spawn_handlers(self) -> dict[tuple[Atom, Atom, int], ProcessBody]:
        """SPAWN_REQUEST services by ``(module, function, arity)``."""
        ...

    # The process API (the BIFs).

    def spawn(
        self,
        fn: ProcessBody,
        *args: Any,
        name: str | None = None,
        link: Pid | Process | None = None,
        trap_exit: bool = False,
    ) -> Process: ...

    def new_process(self, *, name: str | None = None, trap_exit: bool = False) -> Process: ...

    def send(
        self,
        dest: Target | Reference,
        message: Any,
        *,
        sender: Pid | None = None,
        noconnect: bool = False,
    ) -> None: ...

    def exit_signal(self, proc: Process | None, pid: Pid, reason: Any) -> None: ...

    def whereis(self, name: str) -> Pid | None: ...

    def process(self, pid: Pid) -> Process | None: ...

    def make_ref(self) -> Reference: ...

    # Connections and node monitoring.

    def nodes(self, *, hidden: bool = False) -> list[Atom]: ...

    async def connect(self, name: str) -> bool: ...

    async def disconnect(self, name: str) -> bool: ...

    def monitor_nodes(self, callback: NodeCallback) -> Callable[[], None]: ...

    # Siblings.

    def service(self, kind: type[S]) -> S | None:
        """The installed service of type ``kind``, or None."""
        ...


class KernelService(Protocol):
    """A kernel service: created with the node's `KernelOptions`, installed once the node has
    its name and creation, stopped when the node stops (before its processes end)."""

    name: str

    def install(self, host: ServiceHost) -> None: ...

    def stop(self) -> None: ...


ServiceFactory = Callable[[KernelOptions], KernelService]
