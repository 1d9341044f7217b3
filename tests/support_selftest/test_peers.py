"""The peer harness itself: real erl and elixir nodes of each runtime start and evaluate."""

from __future__ import annotations

import pytest

from tests.support.erlang import ErlRuntime, PeerError
from tests.support.fixtures import PeerFactory


def test_erl_peer_evaluates_and_keeps_bindings(erl_runtime: ErlRuntime, peers: PeerFactory) -> None:
    peer = peers.start(erl_runtime, f"drv_{erl_runtime.label}@127.0.0.1")
    assert peer.eval("X = 40 + 2") == "42"
    assert peer.eval("{X, node()}") == f"{{42,'drv_{erl_runtime.label}@127.0.0.1'}}"
    assert peer.eval("erlang:system_info(otp_release)") == "[" + ",".join(str(b) for b in str(erl_runtime.release).encode()) + "]"
    with pytest.raises(PeerError, match="badarith"):
        peer.eval("1 / 0")


def test_elixir_peer_evaluates(erl_runtime: ErlRuntime, peers: PeerFactory) -> None:
    peer = peers.start(erl_runtime, f"ex_{erl_runtime.label}@127.0.0.1", elixir=True)
    assert peer.eval("a = 2; a * 21") == "42"
    assert peer.eval("Node.self()") == f"'ex_{erl_runtime.label}@127.0.0.1'"
