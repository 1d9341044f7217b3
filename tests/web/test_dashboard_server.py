"""``beamlink.web.dashboard`` over real HTTP against a live node, and the observer's rate
arithmetic."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from beamlink.node import Node
from beamlink.web.dashboard import DashboardServer
from beamlink.web.observer import RATE_KEYS, rates
from tests.support.erlang import free_port
from tests.support.wait import eventually

pytestmark = pytest.mark.timeout(60)

counters = st.integers(0, 10**9)


@given(before=st.fixed_dictionaries(dict.fromkeys(RATE_KEYS, counters)),
       after=st.fixed_dictionaries(dict.fromkeys(RATE_KEYS, counters)),
       own=st.integers(0, 10**6), dt=st.floats(0.1, 10))
def test_rates_never_negative_and_leave_out_the_observer(
        before: dict[str, int], after: dict[str, int], own: int, dt: float) -> None:
    prev = {"t": 0.0, "totals": before, "peers": [{"name": "me", **dict.fromkeys(RATE_KEYS, 0)}]}
    cur = {"t": dt, "totals": after, "peers": [{"name": "me", **dict.fromkeys(RATE_KEYS, own)}]}
    got = rates(prev, cur, ["me"])
    for key in RATE_KEYS:
        assert got[key] >= 0
        expected = max(0, max(0, after[key] - before[key]) - own) / dt
        assert got[key] == pytest.approx(expected)


def test_rates_from_peers_only_count_peers_seen_twice() -> None:
    prev = {"t": 1.0, "totals": {}, "peers": [{"name": "a", "msgs_in": 10}]}
    cur = {"t": 3.0, "totals": {}, "peers": [{"name": "a", "msgs_in": 30},
                                             {"name": "new", "msgs_in": 1000}]}
    assert rates(prev, cur, [])["msgs_in"] == 10.0
    assert rates(None, cur, []) == dict.fromkeys(RATE_KEYS, 0.0)


@pytest.fixture
async def served() -> AsyncIterator[tuple[Node, DashboardServer]]:
    epmd = free_port()
    async with Node.start("dw_a@127.0.0.1", "dashtest", epmd_port=epmd,
                          listen_host="127.0.0.1") as node, \
            Node.start("dw_obs@127.0.0.1", "dashtest", epmd_port=epmd, hidden=True,
                       listen=False) as observer:
        server = await DashboardServer.start(observer, [str(node.name)], port=0)
        try:
            yield node, server
        finally:
            await server.close()


async def test_routes_headers_and_the_host_check(served: tuple[Node, DashboardServer]) -> None:
    node, server = served
    assert server.host == "127.0.0.1" and server.port > 0
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        page = await client.get("/")
        assert page.status_code == 200 and "dashboard.js" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        script = await client.get("/static/dashboard.js")
        assert script.headers["content-type"].startswith("text/javascript")
        assert "innerHTML" not in script.text
        assert (await client.get("/static/../../probe.py")).status_code == 404
        assert (await client.post("/")).status_code == 405
        rebound = await client.get("/", headers={"Host": f"evil.example:{server.port}"})
        assert rebound.status_code == 403

        async def python_node() -> bool:
            state = (await client.get("/state")).json()
            view = state["nodes"].get(str(node.name), {})
            return view.get("kind") == "python" and view.get("processes", 0) >= 1

        await eventually(python_node, 10, what="the node in /state")
        async with client.stream("GET", "/events") as events:
            assert events.headers["content-type"] == "text/event-stream"
            lines = events.aiter_lines()
            first = await anext(lines)
            assert first.startswith('data: {"type":"snapshot"')
    await server.close()  # ends the observer; a second close is harmless
