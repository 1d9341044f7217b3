"""net_kernel as other nodes see it: the registered ``net_kernel`` process.

It answers ``{'$gen_call', From, {is_auth, Node}}`` with ``yes``, which is all ``net_adm:ping/1``
needs (MONITOR_P on ``net_kernel`` then REG_SEND of the call, the reply going to the
``[alias|Ref]`` tag's alias or to the caller's pid). Connections themselves are the connection
layer's; node monitoring (``monitor_nodes``) is `beamlink.node.monitors`.
"""

from __future__ import annotations

import logging
from typing import Final

from beamlink.etf import Atom
from beamlink.node.atoms import YES
from beamlink.node.genserver import gen_reply, parse_call
from beamlink.node.kernel.host import KernelOptions, ServiceHost
from beamlink.node.runtime import Process

log = logging.getLogger("beamlink.node")

NET_KERNEL: Final = Atom("net_kernel")
IS_AUTH: Final = Atom("is_auth")


class NetKernel:
    """The ``net_kernel`` kernel service."""

    name = str(NET_KERNEL)

    def __init__(self, options: KernelOptions) -> None:
        self._host: ServiceHost | None = None

    def install(self, host: ServiceHost) -> None:
        """Start the registered ``net_kernel`` process."""
        self._host = host
        host.spawn(self._serve, name=self.name)

    def stop(self) -> None:
        """Nothing to undo: the node ends the process with every other one."""

    async def _serve(self, proc: Process) -> None:
        """Answers is_auth; other calls and messages are dropped."""
        host = self._host
        assert host is not None
        while True:
            call = parse_call(await proc.receive())
            if call is None:
                continue
            from_, request = call
            if type(request) is tuple and len(request) == 2 and request[0] == IS_AUTH:
                gen_reply(host, proc.pid, from_, YES)
            else:
                log.debug("net_kernel ignored call %r", request)
