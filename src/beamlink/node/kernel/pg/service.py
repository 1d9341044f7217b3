"""The ``pg`` kernel service: the node's pg scopes, each started on first use.

OTP starts the default scope ``pg`` only when the kernel parameter ``start_pg`` is true, and
applications start their own scopes (``pg:start_link(Scope)``; Phoenix.PubSub runs
``Elixir.Phoenix.PubSub``). A beamlink node does the same on demand: ``node.pg`` starts ``pg``,
``node.pg_scope(name)`` any other, the first time it is asked for. A scope that starts
discovers the scope of the same name on every connected node, as ``pg:start_link`` does.
"""

from __future__ import annotations

from typing import Final

from beamlink.etf import Atom
from beamlink.node.kernel.host import KernelOptions, ServiceHost
from beamlink.node.kernel.pg.scope import PgScope

DEFAULT_SCOPE: Final = Atom("pg")


class PgService:
    """The pg scopes of one node (``kernel_sup``'s ``pg`` children)."""

    name = "pg"

    def __init__(self, options: KernelOptions) -> None:
        self._host: ServiceHost | None = None
        self.scopes: dict[Atom, PgScope] = {}

    def install(self, host: ServiceHost) -> None:
        """Remember the node; scopes start when first asked for."""
        self._host = host

    def stop(self) -> None:
        """Stop every scope following nodes; end their monitors."""
        for scope in self.scopes.values():
            scope.stop()

    def scope(self, name: str | Atom = DEFAULT_SCOPE) -> PgScope:
        """The scope ``name``, started (registered under ``name``) if it is not running."""
        if self._host is None:
            raise RuntimeError("the node has not started yet: await Node.start(...) first")
        key = name if type(name) is Atom else Atom(str(name))
        scope = self.scopes.get(key)
        if scope is None:
            scope = self.scopes[key] = PgScope(self._host, key)
        return scope
