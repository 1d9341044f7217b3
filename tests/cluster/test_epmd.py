"""``epmd``, ``local_epmd`` and ``erlang_hosts`` against a real EPMD with a real erl node.

The mixed tests run a real Python node and a real Erlang node (OTP 25 and OTP 27) on a private
EPMD: the Python node's topology discovers the Erlang node and connects, and both list each other.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from beamlink.cluster.events import ConnectOk
from beamlink.cluster.schema import EpmdConfig, ErlangHostsConfig, LocalEpmdConfig, TopologyConfig
from beamlink.cluster.strategies import DiscoveryError, StrategyContext, create_strategy
from beamlink.cluster.topology import Cluster
from beamlink.epmd import register
from beamlink.node import Node
from tests.cluster.support import EventLog
from tests.support.erlang import ErlRuntime, runtime
from tests.support.fixtures import PeerFactory, erl_runtime, peers
from tests.support.wait import eventually

__all__ = ["erl_runtime", "peers"]

ERL_PEER = "erlpeer@127.0.0.1"
PY_NODE = "py@127.0.0.1"


def context(self_name: str = "py@127.0.0.1") -> StrategyContext:
    return StrategyContext("t", self_name, lambda event: None)


async def test_epmd_strategy_is_the_static_list() -> None:
    config = EpmdConfig(hosts=("a@127.0.0.2", "b@127.0.0.3"))
    strategy = create_strategy(config, context())
    assert (await strategy.discover()).nodes == {"a@127.0.0.2", "b@127.0.0.3"}
    assert not config.pruning


async def test_local_epmd_lists_real_nodes(private_epmd: int, peers: PeerFactory) -> None:
    await peers.astart(
        runtime("otp25"), "erlpeer@127.0.0.1", env={"ERL_EPMD_PORT": str(private_epmd)}
    )
    registration = await register("pyside", 45678, hidden=False, host="127.0.0.1", epmd_port=private_epmd)
    try:
        strategy = create_strategy(LocalEpmdConfig(epmd_port=private_epmd, allow=("erlpeer@*", "pyside@*")), context())
        nodes = (await strategy.discover()).nodes
    finally:
        await registration.close()
    assert nodes == {"erlpeer@127.0.0.1", "pyside@127.0.0.1"}


async def test_local_epmd_down_is_an_error(private_epmd: int) -> None:
    strategy = create_strategy(LocalEpmdConfig(epmd_port=private_epmd + 0, allow=("*@*",)), context())
    assert (await strategy.discover()).nodes == frozenset()
    dead = create_strategy(LocalEpmdConfig(epmd_port=1, allow=("*@*",)), context())
    try:
        await dead.discover()
    except DiscoveryError as exc:
        assert "EPMD on 127.0.0.1" in str(exc)
    else:
        raise AssertionError("an unreachable EPMD must be a discovery error")


async def test_erlang_hosts_keeps_last_names_of_a_failing_host(
    private_epmd: int, tmp_path: Path
) -> None:
    hosts_file = tmp_path / ".hosts.erlang"
    hosts_file.write_text("% hosts\n'127.0.0.1'.\n'127.0.0.1'.\n")
    registration = await register("one", 45679, hidden=False, host="127.0.0.1", epmd_port=private_epmd)
    try:
        config = ErlangHostsConfig(hosts_file=str(hosts_file), epmd_port=private_epmd, allow=("one@*",))
        strategy = create_strategy(config, context())
        assert (await strategy.discover()).nodes == {"one@127.0.0.1"}
        hosts_file.write_text("'127.0.0.1'.\n'127.0.0.77'.\n")
        assert (await strategy.discover()).nodes == {"one@127.0.0.1"}
    finally:
        await registration.close()
    hosts_file.write_text("'127.0.0.77'.\n")
    try:
        await strategy.discover()
    except DiscoveryError as exc:
        assert "127.0.0.77" in str(exc)
    else:
        raise AssertionError("no host answering must be a discovery error")


async def test_erlang_hosts_bad_file_is_an_error(tmp_path: Path) -> None:
    hosts_file = tmp_path / ".hosts.erlang"
    hosts_file.write_text("os:cmd(\"rm -rf /\").\n")
    strategy = create_strategy(ErlangHostsConfig(hosts_file=str(hosts_file), allow=("*@*",)), context())
    try:
        await strategy.discover()
    except DiscoveryError as exc:
        assert "line 1" in str(exc)
    else:
        raise AssertionError("a file with code must be rejected")


@pytest.mark.parametrize(
    "strategy",
    [
        lambda port: EpmdConfig(hosts=(ERL_PEER,), polling_interval=200),
        lambda port: LocalEpmdConfig(epmd_port=port, polling_interval=200, allow=(ERL_PEER,)),
    ],
    ids=["epmd", "local_epmd"],
)
async def test_python_node_discovers_and_connects_a_real_erlang_node(
    private_epmd: int,
    peers: PeerFactory,
    erl_runtime: ErlRuntime,
    strategy: Callable[[int], TopologyConfig],
) -> None:
    erl = await peers.astart(erl_runtime, ERL_PEER, env={"ERL_EPMD_PORT": str(private_epmd)})
    release = await erl.aeval("list_to_integer(erlang:system_info(otp_release))")
    assert release == str(erl_runtime.release)
    async with Node.start(PY_NODE, erl.cookie, epmd_port=private_epmd) as node:
        cluster = Cluster(node, {"mixed": strategy(private_epmd)})
        events = EventLog()
        cluster.subscribe(events)
        await cluster.start()
        try:
            await eventually(lambda: [str(n) for n in node.nodes()] == [ERL_PEER], timeout=20)
            assert await erl.aeval("nodes()") == f"['{PY_NODE}']"
            assert [e.node for e in events.of(ConnectOk)] == [ERL_PEER]
        finally:
            await cluster.stop(leave=True)
        assert await erl.aeval(
            "fun W(0) -> nodes(); W(N) -> case nodes() of [] -> []; _ -> timer:sleep(50), "
            "W(N - 1) end end(100)"
        ) == "[]"
