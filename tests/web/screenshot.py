"""Makes docs/dashboard.png: the dashboard of a live demo cluster, shot by headless Chromium.

``PYTHONPATH=src python3 -m tests.web.screenshot docs/dashboard.png``: two beamlink nodes, an
``erl`` and an ``elixir`` node, a hidden beamlink node, a discovery error, one node stopped and
traffic for a minute, so that every part of the page has something to show.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from tests.cli.support import beamlink
from tests.support.erlang import runtime, start_peer
from tests.web.browser import screenshot
from tests.web.cluster import A, C, live_cluster

EX = "dash_ex@127.0.0.1"
HIDDEN = "dash_obs@127.0.0.1"


def main(out: str) -> None:
    with tempfile.TemporaryDirectory() as tmp, live_cluster(Path(tmp)) as cluster:
        ex = start_peer(runtime("otp25"), EX, cluster.env["BEAMLINK_COOKIE"], elixir=True,
                        env={"ERL_EPMD_PORT": cluster.env["ERL_EPMD_PORT"]})
        try:
            ex.eval(f":net_kernel.connect_node(:'{A}')")
            cluster.start_node(C)
            beamlink("rpc", C, f'await connect("{A}")', env=cluster.env)
            cluster.start_node(HIDDEN, "--hidden")
            beamlink("rpc", HIDDEN, f'await connect("{A}")', env=cluster.env)
            for pause, count in ((5, 2000), (2, 4000), (1, 20000)):
                cluster.erl.eval(f"spawn(fun() -> [begin {{sink, '{A}'}} ! {{ping, N}}, "
                                 f"timer:sleep({pause}) end || N <- lists:seq(1, {count})] end)")
                time.sleep(12)
            cluster.nodes[-2].terminate()  # C leaves
            time.sleep(1.5)
            screenshot(cluster.url, out)
        finally:
            ex.stop()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/dashboard.png")
