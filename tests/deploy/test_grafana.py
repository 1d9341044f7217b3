"""``deploy/grafana/beamlink.json``: every metric its PromQL queries use is one a live node exports.

The names are parsed out of each expression (label matchers, ranges, strings, ``by``/``without``
groupings and function names removed) and compared with the sample names a real ``beamlink
start --metrics-port --config`` node serves, suffixes included (``_total``, ``_bucket``...).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from tests.cli.support import ROOT, StartedNode, beamlink, cli_env, started
from tests.support.erlang import free_port
from tests.support.wait import eventually_blocking

pytestmark = pytest.mark.timeout(90)

DASHBOARD = ROOT / "deploy" / "grafana" / "beamlink.json"
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
            "and", "or", "unless", "inf", "nan"}
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
IDENTIFIER = re.compile(r"(?<![\w$.])([A-Za-z_:][\w:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (Grafana's ``$variables`` allowed)."""
    expr = STRING.sub('""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = GROUPING.sub("", expr)
    names = set()
    for match in IDENTIFIER.finditer(expr):
        name, call = match.groups()
        if call is None and name.lower() not in KEYWORDS:
            names.add(name)
    return names


def queries(board: dict[str, object]) -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and template variable queries."""
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]  # type: ignore[attr-defined]
    for variable in board["templating"]["list"]:  # type: ignore[index]
        if variable["type"] == "query":
            found = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable["query"]["query"])
            assert found, variable
            exprs.append(found.group(1))
    return exprs


@given(
    name=st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True).filter(
        lambda n: n not in KEYWORDS),
    labels=st.lists(st.sampled_from(['instance=~"$instance"', 'job="by (x)"', "le!='0.5'"]),
                    max_size=2),
    wrap=st.sampled_from(["{}", "rate({}[$__rate_interval])", "sum by (instance, le) ({})",
                          "histogram_quantile(0.9, sum without (pod) (rate({}[5m])))",
                          "{} / on (instance) group_left other_metric", "-{} offset 5m"]),
)
def test_metric_names_finds_the_selected_metric(name: str, labels: list[str], wrap: str) -> None:
    selector = name + ("{" + ", ".join(labels) + "}" if labels else "")
    found = metric_names(wrap.format(selector))
    assert name in found
    assert found - {name} <= {"other_metric"}


def test_every_query_uses_an_exported_metric(tmp_path: Path) -> None:
    board = json.loads(DASHBOARD.read_text())
    used = {name for expr in queries(board) for name in metric_names(expr)}
    assert len(used) >= 10
    config = tmp_path / "cluster.toml"
    config.write_text('[topologies.local]\nstrategy = "epmd"\nhosts = ["graf_b@127.0.0.1"]\n')
    port = free_port()
    env = cli_env(tmp_path)
    node = StartedNode("graf_a@127.0.0.1", env, tmp_path / "a.log", "start",
                       "--name", "graf_a@127.0.0.1", "--config", str(config),
                       "--metrics-port", str(port), "--metrics-host", "127.0.0.1")
    with started([node]):
        node.wait_running()
        # Labelled counters and histograms appear once observed: serve an RPC (a control node
        # that then leaves: a nodedown) and let discovery poll.
        assert beamlink("rpc", "graf_a@127.0.0.1", "1", env=env).returncode == 0

        def scrape() -> set[str]:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
            ready = {"beamlink_cluster_polls_total", "beamlink_nodedown_total",
                     "beamlink_rpc_calls_total"} <= names
            return names if ready else set()

        exported = eventually_blocking(scrape, timeout=20, what="observed metrics")
    missing = sorted(used - exported)
    assert not missing, f"queries use metrics no node exports: {missing}"
