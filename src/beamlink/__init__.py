"""beamlink: Python nodes for Erlang/Elixir clusters.

Layers, lowest first (a layer never imports one above it):
``etf`` (term codec) -> ``epmd`` / ``distribution`` (EPMD, handshake, frames) -> ``connection``
-> ``node`` (node runtime, processes, RPC) -> ``cluster`` (discovery strategies) -> ``cli``.
"""

__version__ = "0.1.0"
