"""Convergence of dns_poll clusters of N real beamlink nodes (one OS process each) on 127.0.x.y.

For N in (5, 20, 50): publish N addresses in a real dnsmasq, start N node processes, and measure
  join     - from the moment the last node is up until every node lists all N-1 others;
  leave    - from SIGTERM of one node until no node lists it (graceful: it disconnects first);
  kill     - from SIGKILL of one node (still in DNS for a while) until no node lists it.
Run from the repository root: ``python3 bench/bench_cluster.py [--sizes 5,20,50] [--polling-ms 5000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.cluster.node_process import ClusterProcess  # noqa: E402
from tests.support.dnsmasq import Dnsmasq  # noqa: E402
from tests.support.erlang import free_port  # noqa: E402

SERVICE = "tasks.bench_cluster"


async def wait_until(predicate: Callable[[], bool], timeout: float) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise TimeoutError("no convergence")
        await asyncio.sleep(0.005)
    return time.monotonic() - started


async def run(size: int, polling_ms: int, dns: Dnsmasq) -> dict[str, float]:
    port = free_port()
    names = [f"bench@127.0.{2 + i // 250}.{1 + i % 250}" for i in range(size)]
    dns.set_hosts({SERVICE: [n.partition("@")[2] for n in names]})
    procs = {n: ClusterProcess(n, port, dns.address, SERVICE, polling_ms) for n in names}
    try:
        for proc in procs.values():
            await proc.start(str(ROOT))
        await wait_until(lambda: all(p.nodes is not None for p in procs.values()), 120)
        last_up = max(p.up_at for p in procs.values())
        members = set(names)
        await wait_until(lambda: all(p.nodes == members - {n} for n, p in procs.items()), 120)
        join = max(p.changed_at for p in procs.values()) - last_up

        leaving = names[-1]
        started = time.monotonic()
        dns.set_hosts({SERVICE: [n.partition("@")[2] for n in names[:-1]]})
        await procs.pop(leaving).terminate()
        rest = set(procs)
        await wait_until(lambda: all(p.nodes == rest - {n} for n, p in procs.items()), 60)
        leave = time.monotonic() - started

        victim = names[0]
        started = time.monotonic()
        await procs.pop(victim).kill()
        rest = set(procs)
        await wait_until(lambda: all(p.nodes == rest - {n} for n, p in procs.items()), 60)
        kill = time.monotonic() - started
        return {"join": join, "leave": leave, "kill": kill}
    finally:
        for proc in procs.values():
            await proc.kill()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="5,20,50")
    parser.add_argument("--polling-ms", type=int, default=5000)
    args = parser.parse_args()
    binary = shutil.which("dnsmasq")
    if binary is None:
        raise SystemExit("dnsmasq is required (apt-get install dnsmasq-base)")
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp).chmod(0o755)
        dns = Dnsmasq(binary, Path(tmp), local_domains=["bench_cluster"])
        dns.start()
        try:
            print(f"dns_poll, polling_interval {args.polling_ms} ms")
            print(f"{'N':>4} {'join (s)':>9} {'leave (s)':>10} {'kill (s)':>9}")
            for size in (int(s) for s in args.sizes.split(",")):
                result = await run(size, args.polling_ms, dns)
                print(f"{size:>4} {result['join']:>9.3f} {result['leave']:>10.3f} {result['kill']:>9.3f}", flush=True)
        finally:
            dns.stop()


if __name__ == "__main__":
    asyncio.run(main())
