"""The kernel services of a node, OTP's kernel processes as Python services: ``net_kernel``
(`net_kernel.py`), the RPC server ``rex`` with the erpc spawn services (`rex.py`, `modules.py`),
``global`` (`globalname/`) and the ``pg`` process group scopes (`pg/`). Each is installed
through the `ServiceHost` protocol (`host.py`) and never sees the concrete `Node`. A new service is one module plus one entry in
`SERVICES` (installed in this order; `Node.stop` stops them in reverse).
"""

from beamlink.node.kernel.globalname import GlobalService
from beamlink.node.kernel.host import KernelOptions, KernelService, ServiceFactory, ServiceHost
from beamlink.node.kernel.net_kernel import NetKernel
from beamlink.node.kernel.pg import PgService
from beamlink.node.kernel.rex import RpcServer

SERVICES: tuple[ServiceFactory, ...] = (NetKernel, RpcServer, GlobalService, PgService)

__all__ = [
    "SERVICES",
    "GlobalService",
    "KernelOptions",
    "KernelService",
    "NetKernel",
    "PgService",
    "RpcServer",
    "ServiceFactory",
    "ServiceHost",
]
