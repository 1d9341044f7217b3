"""pg broadcast throughput: Python ``node.pg.broadcast`` against the same broadcast from Erlang.

Three nodes: two Python nodes (``pgb_a``, the sender, in this process; ``pgb_b`` in a separate
OS process) and one Erlang node (``pgb_e``). The group ``bench`` of the default scope has 100
members: 34 on ``pgb_a``, 33 on ``pgb_b``, 33 on ``pgb_e``. A run broadcasts ``--count``
(default 1,000) messages ``{b, Run, Count}`` to the group; every member counts them and reports
``{done, Run}`` to a collector on ``pgb_a`` when it has them all. The clock runs from the first
broadcast until the 100th report. Two senders take turns on the same members:

- Erlang: a process on ``pgb_e`` runs ``[P ! Msg || P <- pg:get_members(bench)]`` per message;
- Python: ``node.pg.broadcast(Atom("bench"), msg)`` per message on ``pgb_a``.

Messages delivered per second (``count * 100 / seconds``) are printed side by side with the
ratio Python / Erlang. The receivers are the same for both senders, but not the work they do:
the Erlang sender's messages to the 34 members on ``pgb_a`` cross the network and are decoded
there, the Python sender's are local deliveries; the Python receivers are the bottleneck of
both runs. Everything runs ``--rounds`` times (default 3), interleaved; the best of
each is kept (the machine is shared and noisy).

Run from the repository root: ``python3 bench/bench_pg.py [--count N] [--rounds N]``.
Needs ``erl`` (OTP 25+) on PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.support.erlang import free_port, runtime, start_peer  # noqa: E402

from beamlink import Node, Process  # noqa: E402
from beamlink.etf import Atom  # noqa: E402

COOKIE = "beamlinkbench"
GROUP = Atom("bench")
COLLECTOR = "bench_collect"
B = Atom("b")
DONE = Atom("done")
SENDER = "pgb_a@127.0.0.1"
PER_NODE = {"pgb_a": 34, "pgb_b": 33, "pgb_e": 33}
MEMBERS = sum(PER_NODE.values())
YIELD_EVERY = 8  # broadcasts between two yields of the Python sender to its event loop


def python_members(node: Node, count: int) -> list[Process]:
    """``count`` members of ``bench``: each reports ``{done, Run}`` once it has a run's
    messages."""

    async def member(proc: Process) -> None:
        run, seen = None, 0
        collector = (Atom(COLLECTOR), Atom(SENDER))
        while True:
            msg = await proc.receive()
            seen = seen + 1 if msg[1] == run else 1
            run = msg[1]
            if seen == msg[2]:
                proc.send(collector, (DONE, run))

    procs = [node.spawn(member) for _ in range(count)]
    node.pg.join(GROUP, procs)
    return procs


async def serve_members(port: int) -> None:
    """The second Python node (a separate OS process): its members, until stdin closes."""
    async with Node.start(
        "pgb_b@127.0.0.1", COOKIE, epmd_port=port, listen_host="127.0.0.1"
    ) as node:
        python_members(node, PER_NODE["pgb_b"])
        print("READY", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


ERL_SETUP = (
    "Loop = fun L(Run, Seen) -> receive {b, R, N} -> S = case R of Run -> Seen + 1; _ -> 1 end, "
    "case S of N -> {bench_collect, '" + SENDER + "'} ! {done, R}; _ -> ok end, L(R, S) end end, "
    "Ms = [spawn(fun() -> Loop(none, 0) end) || _ <- lists:seq(1, {n})], "
    "ok = pg:join(bench, Ms), "
    "Bcast = fun(Run, N) -> lists:foreach(fun(_) -> "
    "[P ! {b, Run, N} || P <- pg:get_members(bench)] end, lists:seq(1, N)) end"
)


class Bench:
    def __init__(self, node: Node, erl: Any, count: int) -> None:
        self.node = node
        self.erl = erl
        self.count = count
        self.runs = 0
        self.timeout = 60.0
        self.collector = node.new_process(name=COLLECTOR)

    async def _collect(self, run: int) -> None:
        for done in range(MEMBERS):
            try:
                await self.collector.receive(lambda m: m == (DONE, run), timeout=self.timeout)
            except Exception:
                raise RuntimeError(f"run {run}: only {done} of {MEMBERS} members got it all") from None

    async def erlang(self) -> float:
        self.runs += 1
        run = self.runs
        started = time.perf_counter()
        await self.erl.aeval(f"Bcast({run}, {self.count})", timeout=self.timeout)
        await self._collect(run)
        return time.perf_counter() - started

    async def python(self) -> float:
        self.runs += 1
        run = self.runs
        msg = (B, run, self.count)
        broadcast = self.node.pg.broadcast
        started = time.perf_counter()
        for i in range(self.count):
            broadcast(GROUP, msg)
            if i % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        await self._collect(run)
        return time.perf_counter() - started


async def wait_members(node: Node, erl: Any, timeout: float = 30.0) -> None:
    """Until both senders list all the members."""
    deadline = time.monotonic() + timeout
    while True:
        here = len(node.pg.get_members(GROUP))
        there = int(await erl.aeval("length(pg:get_members(bench))"))
        if here == there == MEMBERS:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{here} and {there} of {MEMBERS} members listed")
        await asyncio.sleep(0.05)


async def run(args: argparse.Namespace) -> None:
    port = free_port()
    async with Node.start(SENDER, COOKIE, epmd_port=port, listen_host="127.0.0.1") as node:
        python_members(node, PER_NODE["pgb_a"])
        second = subprocess.Popen(
            [sys.executable, __file__, "--serve-members", str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        erl = None
        try:
            assert second.stdout is not None
            ready = await asyncio.get_running_loop().run_in_executor(None, second.stdout.readline)
            if ready.strip() != "READY":
                raise RuntimeError("the second Python node did not start")
            erl = await asyncio.to_thread(
                start_peer, runtime("otp25"), "pgb_e@127.0.0.1", COOKIE,
                env={"ERL_EPMD_PORT": str(port)},
            )
            assert (await erl.aeval("pg:start(pg)")).startswith("{ok,")
            await erl.aeval(ERL_SETUP.replace("{n}", str(PER_NODE["pgb_e"])))
            await node.connect("pgb_b@127.0.0.1")
            await node.connect("pgb_e@127.0.0.1")
            await wait_members(node, erl)
            bench = Bench(node, erl, args.count)
            best = {"Erlang": float("inf"), "Python": float("inf")}
            for round_ in range(1, args.rounds + 1):
                for label, fn in (("Erlang", bench.erlang), ("Python", bench.python)):
                    seconds = await fn()
                    best[label] = min(best[label], seconds)
                    rate = args.count * MEMBERS / seconds
                    print(f"round {round_} {label:<7} {rate:>12,.0f} msg/s", flush=True)
            total = args.count * MEMBERS
            erl_rate, py_rate = total / best["Erlang"], total / best["Python"]
            print(f"\nbroadcast to {MEMBERS} members on 3 nodes, {args.count:,} broadcasts, "
                  f"best of {args.rounds}:")
            print("| sender | messages delivered/s | vs Erlang |\n|---|---:|---:|")
            print(f"| Erlang (pg:get_members + !) | {erl_rate:,.0f} | 1.00 |")
            print(f"| Python (node.pg.broadcast) | {py_rate:,.0f} | {py_rate / erl_rate:.2f} |")
        finally:
            if erl is not None:
                await asyncio.to_thread(erl.stop)
            if second.stdin is not None:
                second.stdin.close()
            await asyncio.to_thread(second.wait, 30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve-members", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_members is not None:
        asyncio.run(serve_members(args.serve_members))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
