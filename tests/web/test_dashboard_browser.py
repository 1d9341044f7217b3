"""The dashboard in a real browser: headless Chromium against a live cluster of two beamlink
nodes and one ``erl`` node, watched by a ``beamlink dashboard`` process.

The page shows all three (Python and Erlang told apart), a stopped node fades within 2 s, a new
node appears within 2 s, message rates move while an Erlang process sends a stream of messages,
and node-provided markup (registered names on both kinds of node, a topology name in the event
log) shows as literal text and runs nothing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli.support import beamlink
from tests.support.wait import eventually_blocking
from tests.web.apps import HOSTILE_NAME
from tests.web.browser import browser
from tests.web.cluster import ERL, GHOST, HOSTILE_TOPOLOGY, A, B, C, live_cluster

pytestmark = [pytest.mark.timeout(180), pytest.mark.interop]

#: What the page shows, read from the DOM (card attributes and text, graph nodes, log lines).
READ_PAGE = """
const cards = {};
for (const card of document.querySelectorAll('#cards .card')) {
  cards[card.dataset.node] = {
    kind: card.dataset.kind, state: card.dataset.state,
    msgsin: parseFloat(card.dataset.msgsin || '0'),
    msgsout: parseFloat(card.dataset.msgsout || '0'),
    registered: card.querySelector('.f-registered').textContent,
    processes: card.querySelector('.f-processes').textContent,
    uptime: card.querySelector('.f-uptime').textContent,
    lag: card.querySelector('.f-lag').textContent,
  };
}
const graph = {};
for (const g of document.querySelectorAll('#graph .gnode')) {
  graph[g.dataset.node] = {kind: g.dataset.kind, state: g.dataset.state,
                           opacity: parseFloat(getComputedStyle(g).opacity)};
}
return {cards, graph,
        edges: document.querySelectorAll('#graph line.edge').length,
        log: Array.from(document.querySelectorAll('#log li')).map((li) => li.textContent),
        images: document.querySelectorAll('img').length,
        pwned: window.__pwned === undefined ? null : window.__pwned,
        status: document.getElementById('status').textContent};
"""


def page(driver: Any) -> dict[str, Any]:
    result: dict[str, Any] = driver.execute_script(READ_PAGE)
    return result


def test_dashboard_in_chromium(tmp_path: Path) -> None:
    with live_cluster(tmp_path) as cluster, browser() as driver:
        driver.get(cluster.url)

        def all_three() -> dict[str, Any] | None:
            seen = page(driver)
            cards = seen["cards"]
            ok = all(cards.get(n, {}).get("state") == "up" for n in (A, B, ERL))
            return seen if ok and seen["status"] == "live" else None

        seen = eventually_blocking(all_three, timeout=30, what="A, B and the erl node on the page")
        assert seen["cards"][A]["kind"] == seen["cards"][B]["kind"] == "python"
        assert seen["cards"][ERL]["kind"] == "erlang"
        assert seen["graph"][ERL]["kind"] == "erlang" and seen["graph"][A]["kind"] == "python"
        assert seen["edges"] >= 3  # A-B, A-erl, B-erl
        assert int(seen["cards"][ERL]["processes"]) > 20
        assert seen["cards"][ERL]["lag"] == "n/a"

        # Hostile strings: shown literally, no element made of them, no script ran.
        assert HOSTILE_NAME in seen["cards"][A]["registered"]
        assert HOSTILE_NAME in seen["cards"][ERL]["registered"]
        eventually_blocking(lambda: any(HOSTILE_TOPOLOGY in line and GHOST in line
                                        for line in page(driver)["log"]),
                            timeout=30, what="the discovery error in the log")
        seen = page(driver)
        assert seen["images"] == 0
        assert seen["pwned"] is None

        # Traffic: an Erlang process sends ~200 messages a second to A's sink for 15 s.
        quiet = page(driver)["cards"][A]["msgsin"]
        cluster.erl.eval(f"spawn(fun() -> [begin {{sink, '{A}'}} ! {{ping, N}}, timer:sleep(5) "
                         "end || N <- lists:seq(1, 3000)] end)")
        eventually_blocking(lambda: page(driver)["cards"][A]["msgsin"] >= quiet + 50,
                            timeout=15, what="A's messages in per second rising")
        eventually_blocking(lambda: page(driver)["cards"][ERL]["msgsout"] >= 50,
                            timeout=15, what="the erl node's messages out per second rising")

        # A stopped node fades out within 2 s of its process ending.
        b = cluster.nodes[1]
        assert b.terminate() == 0
        gone = time.monotonic()
        eventually_blocking(lambda: page(driver)["cards"][B]["state"] == "down",
                            timeout=2.0, interval=0.05, what="B marked as left")
        assert time.monotonic() - gone < 2.0
        eventually_blocking(lambda: page(driver)["graph"][B]["opacity"] < 0.5,
                            timeout=5, what="B faded out in the graph")

        # A new node appears within 2 s of joining the cluster.
        cluster.start_node(C)
        result = beamlink("rpc", C, f'await connect("{A}")', env=cluster.env)
        assert result.stdout.strip() == "True", result.stderr
        joined = time.monotonic()
        eventually_blocking(lambda: page(driver)["cards"].get(C, {}).get("state") == "up",
                            timeout=2.0, interval=0.05, what="C on the page")
        assert time.monotonic() - joined < 2.0
        assert page(driver)["pwned"] is None
