"""Message and GenServer-call throughput between Erlang and Python nodes (not a test).

One sender sends ``--count`` (default 1,000,000) messages ``{hello, <<"world">>, 42}`` to a
registered process on another node, which reports back when it has received them all; the
sender's clock runs from the first send to that report. Directions: Erlang->Erlang (the
reference, two OTP nodes), Erlang->Python, Python->Erlang, Python->Python (two Python nodes in
separate OS processes). Every direction runs a second time with distinct messages
``{hello, <<"world">>, N}`` (N counting down from the count): a Python receiver memoizes small
immutable messages by their bytes, so the first set shows repeated messages and the second the
full decoding cost. Then ``gen_server`` call round trips per second, sequential, one caller:
Erlang->Erlang, Erlang->Python (a plain ``handle_call``, in the worker pool, and one marked
``on_loop``), Python->Erlang; and ``rpc:call`` round trips per second into a
function that returns its argument, sequential, one caller: Erlang->Erlang, Erlang->Python into a
synchronous Python function (it runs in the node's worker pool) and into one marked ``on_loop``
(it runs inline). Then the rows of issue 17: ``--callers`` (50) concurrent callers making
``--calls`` calls between them (aggregate calls/s; Erlang->Erlang, Erlang->Python into both
servers, Python->Erlang); ``--senders`` (4) Erlang nodes sending distinct messages at once into one
Erlang process and into one Python process; ``--big`` (200) binaries of 1 MiB Erlang->Erlang,
Erlang->Python, Python->Erlang (MiB/s); and last the RSS of an idle Python node in its own OS
process. Every figure of every round is printed with its ratio to that round's Erlang->Erlang
figure of the same kind; the final table puts each row's best against the best Erlang->Erlang
round. The single-sender message rows and the 1 MiB rows also print the CPU time the sending
and the receiving OS process used per message (all their threads; Linux /proc): on a shared
machine a rate depends on how much CPU the processes got, this cost does not. ``--only`` picks sections; ``--uvloop``
runs the Python nodes on uvloop (``beamlink.eventloop``); ``BEAMLINK_PURE_PYTHON=1`` in the
environment measures the pure-Python codec (the first line printed says which codec and loop run).

Everything runs ``--rounds`` times (default 3), interleaved, and the table keeps each row's best
and the median (range) of its per-round ratios (the machine is shared and noisy; Erlang and Python
rows see the same conditions).

``--tls``: every node (Erlang ones with ``-proto_dist inet_tls``) runs TLS distribution with one
ssl_dist_optfile made by ``beamlink tls init`` (TLS 1.3, mutual verification), so the reference
is Erlang TLS-to-TLS in the same run (target: Python directions >= 0.5x of it).

Run from the repository root:
``python3 bench/bench_messages.py [--count N] [--calls N] [--rounds N] [--tls] [--only S,...]``;
``--erl-args "+S 1:1"`` passes extra arguments to every Erlang node.
``--profile`` then profiles the Python receiver and sender in separate runs (cProfile, top
functions by own time), and the Python receiver of ``--big`` 1 MiB binaries when the binaries
are measured.
Needs ``erl``/``erlc`` (OTP 25+) on PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.support.erlang import ErlPeer, real_epmd, runtime, start_peer  # noqa: E402

from beamlink import (  # noqa: E402
    GenServer,
    Node,
    etf,
    eventloop,
)
from beamlink.etf import Atom  # noqa: E402
from beamlink.node.atoms import DOWN_TAG  # noqa: E402
from beamlink.node.errors import ReceiveTimeout  # noqa: E402
from beamlink.node.runtime.executor import on_loop  # noqa: E402

COOKIE = "beamlinkbench"
HOST = "127.0.0.1"
MESSAGE = (Atom("hello"), b"world", 42)
BENCH_RX = Atom("bench_rx")
BENCH_TX = Atom("bench_tx")
BENCH_GS = Atom("bench_gs")
DONE = Atom("bench_done")
SEND_CHUNK = 2000
REPORT_TIMEOUT = 600.0  # s: the longest wait for a receiver's report after the last send
START_TIMEOUT = 60.0  # s: for a Python node in its own OS process to start
SECTIONS = "messages,senders,binaries,calls,rpc"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

ERLANG_SOURCE = r"""
-module(bl_bench).
-behaviour(gen_server).
-export([start_rx/2, send/2, send_distinct/2, start_gs/0, calls/2, rpcs/4, echo/1]).
-export([start_rx_any/2, send_bin/3, concurrent_calls/3, multi_send/3]).
-export([init/1, handle_call/3, handle_cast/2]).

%% A registered receiver that tells {bench_tx, TxNode} when Count messages have arrived.
start_rx(Count, TxNode) ->
    Pid = spawn(fun() -> rx(Count, TxNode) end),
    register(bench_rx, Pid),
    ok.

rx(0, TxNode) -> {bench_tx, TxNode} ! bench_done;
rx(N, TxNode) -> receive {hello, _, _} -> rx(N - 1, TxNode) end.

%% As start_rx/2, counting messages of any shape (the 1 MiB binaries).
start_rx_any(Count, TxNode) ->
    Pid = spawn(fun() -> rx_any(Count, TxNode) end),
    register(bench_rx, Pid),
    ok.

rx_any(0, TxNode) -> {bench_tx, TxNode} ! bench_done;
rx_any(N, TxNode) -> receive _ -> rx_any(N - 1, TxNode) end.

%% Send Count binaries of Size bytes to {bench_rx, RxNode}; microseconds until the report.
send_bin(RxNode, Count, Size) ->
    register(bench_tx, self()),
    Bin = binary:copy(<<"0123456789abcdef">>, Size div 16),
    T0 = erlang:monotonic_time(microsecond),
    send_loop({bench_rx, RxNode}, Bin, Count),
    receive bench_done -> ok end,
    unregister(bench_tx),
    erlang:monotonic_time(microsecond) - T0.

%% Callers processes each make PerCaller sequential calls to {bench_gs, Node} at once;
%% microseconds until the last one is done.
concurrent_calls(Node, Callers, PerCaller) ->
    Self = self(),
    T0 = erlang:monotonic_time(microsecond),
    Pids = [spawn_link(fun() -> call_loop({bench_gs, Node}, PerCaller), Self ! {self(), done} end)
            || _ <- lists:seq(1, Callers)],
    [receive {Pid, done} -> ok end || Pid <- Pids],
    erlang:monotonic_time(microsecond) - T0.

%% One sender process on each of SenderNodes sends Count distinct messages to
%% {bench_rx, RxNode} at once (the receiver expects all of them and reports to this node);
%% microseconds until the report.
multi_send(RxNode, SenderNodes, Count) ->
    register(bench_tx, self()),
    T0 = erlang:monotonic_time(microsecond),
    [spawn(N, fun() -> distinct_loop({bench_rx, RxNode}, Count) end) || N <- SenderNodes],
    receive bench_done -> ok end,
    unregister(bench_tx),
    erlang:monotonic_time(microsecond) - T0.

%% Send Count messages to {bench_rx, RxNode}; microseconds until the receiver's report.
send(RxNode, Count) ->
    register(bench_tx, self()),
    Msg = {hello, <<"world">>, 42},
    T0 = erlang:monotonic_time(microsecond),
    send_loop({bench_rx, RxNode}, Msg, Count),
    receive bench_done -> ok end,
    unregister(bench_tx),
    erlang:monotonic_time(microsecond) - T0.

send_loop(_, _, 0) -> ok;
send_loop(Dest, Msg, N) -> Dest ! Msg, send_loop(Dest, Msg, N - 1).

%% As send/2, with the distinct messages {hello, <<"world">>, N}.
send_distinct(RxNode, Count) ->
    register(bench_tx, self()),
    T0 = erlang:monotonic_time(microsecond),
    distinct_loop({bench_rx, RxNode}, Count),
    receive bench_done -> ok end,
    unregister(bench_tx),
    erlang:monotonic_time(microsecond) - T0.

distinct_loop(_, 0) -> ok;
distinct_loop(Dest, N) -> Dest ! {hello, <<"world">>, N}, distinct_loop(Dest, N - 1).

start_gs() ->
    {ok, Pid} = gen_server:start({local, bench_gs}, ?MODULE, [], []),
    Pid.

%% Count sequential gen_server:call round trips to {bench_gs, Node}; microseconds taken.
calls(Node, Count) ->
    T0 = erlang:monotonic_time(microsecond),
    call_loop({bench_gs, Node}, Count),
    erlang:monotonic_time(microsecond) - T0.

call_loop(_, 0) -> ok;
call_loop(Dest, N) -> N = gen_server:call(Dest, N), call_loop(Dest, N - 1).

%% Count sequential rpc:call(Node, M, F, [N]) round trips; microseconds taken.
rpcs(Node, M, F, Count) ->
    T0 = erlang:monotonic_time(microsecond),
    rpc_loop(Node, M, F, Count),
    erlang:monotonic_time(microsecond) - T0.

rpc_loop(_, _, _, 0) -> ok;
rpc_loop(Node, M, F, N) -> N = rpc:call(Node, M, F, [N]), rpc_loop(Node, M, F, N - 1).

echo(X) -> X.

init([]) -> {ok, nil}.
handle_call(Req, _From, S) -> {reply, Req, S}.
handle_cast(_, S) -> {noreply, S}.
"""


class Echo(GenServer):
    """The Python side of the call benchmark: replies with the request (a plain callback: it
    runs in the node's worker pool)."""

    name = "bench_gs"

    def handle_call(self, request: Any, from_: Any) -> Any:
        return request


class EchoOnLoop(Echo):
    """The same with the callback marked to run inline on the event loop."""

    @on_loop
    def handle_call(self, request: Any, from_: Any) -> Any:
        return request


def echo(value: Any) -> Any:
    """The Python side of the RPC benchmark: a synchronous function (runs in a worker)."""
    return value


@on_loop
def echo_on_loop(value: Any) -> Any:
    """The same, marked to run inline on the event loop."""
    return value


RPC_MODULE = "bl_py_bench"


async def python_receiver(node: Node, count: int, tx_node: str) -> None:
    """Register ``bench_rx``: receive ``count`` messages, then report to ``{bench_tx, tx_node}``."""

    async def body(proc: Any) -> None:
        receive = proc.receive
        for _ in range(count):
            await receive()
        proc.send((BENCH_TX, Atom(tx_node)), DONE)

    node.spawn(body, name=BENCH_RX)


async def python_sender(
    node: Node, rx_node: str, count: int, distinct: bool = False, payload: Any = MESSAGE,
    chunk: int = SEND_CHUNK,
) -> float:
    """Send ``count`` messages to ``{bench_rx, rx_node}``; seconds until the receiver reports.

    ``distinct``: send ``{hello, <<"world">>, N}`` with N counting down instead of ``payload``.
    ``chunk`` messages go out per loop iteration. The receiver is monitored: a ``RuntimeError``
    comes as soon as it is gone (it exited, its node disconnected), or when it has not reported
    ``REPORT_TIMEOUT`` s after the last send.
    """
    dest = (BENCH_RX, Atom(rx_node))
    hello, world = MESSAGE[0], MESSAGE[1]
    with node.new_process(name=BENCH_TX) as proc:
        watch = proc.monitor(dest)
        send = proc.send
        start = time.perf_counter()
        sent = 0
        while sent < count:
            numbers = range(count - sent, max(count - sent - chunk, 0), -1)
            if distinct:
                for n in numbers:
                    send(dest, (hello, world, n))
            else:
                for _ in numbers:
                    send(dest, payload)
            sent += chunk
            await asyncio.sleep(0)
        try:
            got = await proc.receive(
                lambda m: m == DONE or (type(m) is tuple and m[:2] == (DOWN_TAG, watch)),
                timeout=REPORT_TIMEOUT,
            )
        except ReceiveTimeout:
            raise RuntimeError(
                f"{dest} did not report {count:,} messages within {REPORT_TIMEOUT:.0f} s "
                "of the last send (lost messages? see the receiving node's output)"
            ) from None
        seconds = time.perf_counter() - start
        if got != DONE:
            raise RuntimeError(
                f"{dest} went down ({got[4]}) before it reported {count:,} messages "
                "(see the receiving node's output)"
            )
        proc.demonitor(watch)
        return seconds


async def python_calls(node: Node, dest: Any, count: int) -> float:
    """Seconds for ``count`` sequential calls to ``dest``."""
    start = time.perf_counter()
    for i in range(count):
        assert await node.call(dest, i) == i
    return time.perf_counter() - start


async def python_concurrent_calls(node: Node, dest: Any, callers: int, per_caller: int) -> float:
    """Seconds for ``callers`` tasks making ``per_caller`` sequential calls each, all at once."""
    start = time.perf_counter()
    await asyncio.gather(*(python_calls(node, dest, per_caller) for _ in range(callers)))
    return time.perf_counter() - start


IDLE_NODE = """
import asyncio, sys
from beamlink import Node

async def main():
    async with Node.start(sys.argv[1], cookie="beamlinkbench"):
        print("READY", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) that process ``pid`` has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class CpuMeter:
    """CPU time that a sender and a receiver process use between `start` and `stop`, per message:
    a figure of each side's cost that, unlike a rate, does not depend on how much of the shared
    machine's CPU the processes got."""

    def __init__(self, tx: int, rx: int) -> None:
        self.pids = (tx, rx)
        self.used = (0.0, 0.0)

    def start(self) -> CpuMeter:
        self.used = (cpu_seconds(self.pids[0]), cpu_seconds(self.pids[1]))
        return self

    def stop(self) -> CpuMeter:
        self.used = (cpu_seconds(self.pids[0]) - self.used[0],
                     cpu_seconds(self.pids[1]) - self.used[1])
        return self

    def per_message(self, count: int) -> tuple[float, float]:
        """Microseconds of CPU per message: (sender, receiver)."""
        return self.used[0] / count * 1e6, self.used[1] / count * 1e6


def rss_mib(pid: int) -> float:
    """Resident set size of process ``pid`` in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def idle_rss(settle: float = 3.0) -> float:
    """RSS (MiB) of a fresh Python node, alone in its OS process, ``settle`` s after start."""
    child = subprocess.Popen(
        [sys.executable, "-c", IDLE_NODE, f"bench_idle@{HOST}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout is not None
        line = await asyncio.to_thread(child.stdout.readline)
        assert line.strip() == "READY", line
        await asyncio.sleep(settle)
        return rss_mib(child.pid)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)


@contextlib.asynccontextmanager
async def python_rx_node(node: Node, count: int) -> AsyncIterator[tuple[str, int]]:
    """A second Python node in its own OS process, its ``bench_rx`` waiting for ``count``
    messages (to report to ``node``); yields its name and OS pid, connected first, as the other
    directions are. A child that prints no READY within ``START_TIMEOUT`` s is an error."""
    rx_name = f"bench_py2@{HOST}"
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve-rx", rx_name, "--count", str(count),
         "--tx", str(node.name)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout is not None
        try:
            line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), START_TIMEOUT)
        except asyncio.TimeoutError:
            raise RuntimeError(
                f"the Python->Python receiver {rx_name} did not start within {START_TIMEOUT:.0f} s"
            ) from None
        assert line.strip() == "READY", line
        assert await node.ping(rx_name), f"{rx_name} does not answer a ping"
        yield rx_name, child.pid
    finally:
        assert child.stdin is not None
        child.stdin.close()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()  # hung: also ends a readline still waiting for it
            child.wait()


async def erl_seconds(peer: ErlPeer, code: str) -> float:
    """Seconds an Erlang measurement took: ``code`` returns the microseconds it measured."""
    return int(await peer.aeval(code, timeout=600)) / 1e6


async def serve_rx(name: str, count: int, tx_node: str) -> None:
    """The second Python node of the Python->Python run (a separate OS process)."""
    async with Node.start(name, cookie=COOKIE) as node:
        await python_receiver(node, count, tx_node)
        print("READY", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def codec_name() -> str:
    """Which ETF codec runs: the C accelerator or the pure-Python fallback."""
    return "C accelerator" if etf.ACCELERATED else "pure Python (BEAMLINK_PURE_PYTHON=1 or not built)"


def profiled(label: str, profile: cProfile.Profile) -> None:
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(14)
    print(f"\n--- profile: {label} (sorted by own time) ---")
    print("\n".join(out.getvalue().splitlines()[4:30]))


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.count: int = args.count
        self.calls: int = args.calls
        self.callers: int = args.callers
        self.senders: int = args.senders
        self.big: int = args.big
        self.profile: bool = args.profile
        self.profile_count: int = args.profile_count
        self.rounds: int = args.rounds
        self.only: set[str] = set(args.only.split(","))
        self.best: dict[tuple[str, str], float] = {}  # (direction, unit) -> best rate
        self.ratios: dict[tuple[str, str], list[float]] = {}  # -> each round's ratio
        self.cpu: dict[tuple[str, str], list[tuple[float, float]]] = {}  # -> each round's CPU/msg
        self.round_refs: dict[str, float] = {}  # unit -> this round's Erlang->Erlang figure
        self.peers: list[ErlPeer] = []
        self.erl_args: tuple[str, ...] = tuple(args.erl_args.split())

    def erl(self, name: str, code_dir: str) -> ErlPeer:
        peer = start_peer(runtime("otp25"), f"{name}@{HOST}", COOKIE,
                          extra_args=("-pa", code_dir, *self.erl_args))
        self.peers.append(peer)
        return peer

    async def metered(
        self, label: str, unit: str, count: int, pids: tuple[int, int], seconds: Awaitable[float]
    ) -> None:
        """Await ``seconds`` (what sending ``count`` messages took) while metering the CPU of the
        sending and the receiving OS process (``pids``), and record the row."""
        cpu = CpuMeter(*pids).start()
        taken = await seconds
        self.row(label, count / taken, unit, cpu.stop().per_message(count))

    def row(
        self, label: str, per_second: float, unit: str, cpu: tuple[float, float] | None = None
    ) -> None:
        """Record one measurement, printed with its ratio to this round's Erlang->Erlang figure
        of the same unit (measured first) and ``cpu`` (sender, receiver: CPU microseconds per
        message); the report keeps the best of the rounds and the median of the ratios."""
        key = (label, unit)
        self.best[key] = max(self.best.get(key, 0.0), per_second)
        if label.startswith("Erlang -> Erlang"):
            self.round_refs[unit] = per_second
        ref = self.round_refs.get(unit)
        ratio = ""
        if ref:
            self.ratios.setdefault(key, []).append(per_second / ref)
            ratio = f"{per_second / ref:6.2f}x"
        note = ""
        if cpu is not None:
            self.cpu.setdefault(key, []).append(cpu)
            note = f"CPU/msg tx {cpu[0]:.2f} us, rx {cpu[1]:.2f} us"
        print(f"  {label:<34} {per_second:>12,.0f} {unit:<22} {ratio}  {note}".rstrip(), flush=True)

    async def run(self, code_dir: str) -> None:
        names = ["bench_e1", "bench_e2", *(f"bench_s{i}" for i in range(2, self.senders + 1))]
        peers = await asyncio.gather(*(asyncio.to_thread(self.erl, name, code_dir) for name in names))
        e1, e2, *others = peers
        print(f"codec: {codec_name()}; event loop: {type(asyncio.get_running_loop()).__module__}")
        async with Node.start(f"bench_py@{HOST}", cookie=COOKIE) as node:
            py = str(node.name)
            await e1.aeval(f"net_adm:ping('{e2.name}'), net_adm:ping('{py}')")
            await e2.aeval(f"net_adm:ping('{py}'), bl_bench:start_gs()")
            for peer in others:
                await peer.aeval(f"net_adm:ping('{e1.name}'), net_adm:ping('{e2.name}'), "
                                 f"net_adm:ping('{py}')")
            senders = [e1, *others]
            for round_ in range(1, self.rounds + 1):
                print(f"--- round {round_} of {self.rounds}")
                if "messages" in self.only:
                    await self.messages(node, e1, e2)
                if "senders" in self.only:
                    await self.many_senders(node, senders, e2)
                if "binaries" in self.only:
                    await self.binaries(node, e1, e2)
                if "calls" in self.only:
                    await self.gen_server_calls(node, e1, e2)
                if "rpc" in self.only:
                    await self.rpc_calls(node, e1, e2)
            self.report()
            if self.profile:
                await self.profiled_runs(node, e1, e2)
        rss = await idle_rss()
        print(f"\nidle Python node RSS: {rss:.1f} MiB (target < 40 MB)")

    async def messages(self, node: Node, e1: ErlPeer, e2: ErlPeer) -> None:
        n = self.count
        for distinct in (False, True):
            kind = "distinct msg/s" if distinct else "msg/s"
            shown = "{hello, <<\"world\">>, N}" if distinct else "{hello, <<\"world\">>, 42}"
            print(f"messages ({n:,} x {shown}):")
            send = "send_distinct" if distinct else "send"
            await self.three_directions(
                node, e1, e2, n, kind, "start_rx",
                f"bl_bench:{send}('{{to}}', {n})",
                partial(python_sender, node, count=n, distinct=distinct),
            )
            async with python_rx_node(node, n) as (rx_name, rx_pid):
                await self.metered("Python -> Python", kind, n, (os.getpid(), rx_pid),
                                   python_sender(node, rx_name, n, distinct))

    async def many_senders(self, node: Node, senders: list[ErlPeer], e2: ErlPeer) -> None:
        """One sender on each of ``senders`` (Erlang nodes) at once, distinct messages, into
        one Erlang process (on ``e2``) and into one Python process."""
        n, k, py, e1 = self.count // len(senders), len(senders), str(node.name), senders[0]
        kind = f"msg/s ({k} senders)"
        print(f"{k} Erlang senders on {k} nodes at once, {n:,} distinct messages each:")
        names = "[" + ", ".join(f"'{peer.name}'" for peer in senders) + "]"
        await e2.aeval(f"bl_bench:start_rx({n * k}, '{e1.name}')")
        us = int(await e1.aeval(f"bl_bench:multi_send('{e2.name}', {names}, {n})", timeout=600))
        self.row("Erlang -> Erlang", n * k / (us / 1e6), kind)
        await python_receiver(node, n * k, e1.name)
        us = int(await e1.aeval(f"bl_bench:multi_send('{py}', {names}, {n})", timeout=600))
        self.row("Erlang -> Python", n * k / (us / 1e6), kind)

    async def binaries(self, node: Node, e1: ErlPeer, e2: ErlPeer) -> None:
        n, size = self.big, 1 << 20
        print(f"{n:,} binaries of 1 MiB:")
        payload = b"0123456789abcdef" * (size // 16)
        await self.three_directions(
            node, e1, e2, n, "MiB/s (1 MiB binaries)", "start_rx_any",
            f"bl_bench:send_bin('{{to}}', {n}, {size})",
            partial(python_sender, node, count=n, payload=payload, chunk=4),
        )

    async def three_directions(
        self, node: Node, e1: ErlPeer, e2: ErlPeer, n: int, kind: str, start_rx: str,
        erl_send: str, py_send: Callable[[str], Awaitable[float]],
    ) -> None:
        """Erlang->Erlang (``e1`` to ``e2``), Erlang->Python and Python->Erlang, metered:
        ``bl_bench:<start_rx>`` makes the Erlang receiver of ``n`` messages, ``erl_send`` is the
        Erlang code that sends them to node ``{to}`` (returning microseconds), ``py_send(node)``
        the Python sender (returning seconds)."""
        me, pid1, pid2, py = os.getpid(), e1.proc.pid, e2.proc.pid, str(node.name)
        await e2.aeval(f"bl_bench:{start_rx}({n}, '{e1.name}')")
        await self.metered("Erlang -> Erlang", kind, n, (pid1, pid2),
                           erl_seconds(e1, erl_send.format(to=e2.name)))
        await python_receiver(node, n, e1.name)
        await self.metered("Erlang -> Python", kind, n, (pid1, me),
                           erl_seconds(e1, erl_send.format(to=py)))
        await e2.aeval(f"bl_bench:{start_rx}({n}, '{py}')")
        await self.metered("Python -> Erlang", kind, n, (me, pid2), py_send(e2.name))

    async def gen_server_calls(self, node: Node, e1: ErlPeer, e2: ErlPeer) -> None:
        calls, py = self.calls, str(node.name)
        print(f"gen_server calls ({calls:,} sequential round trips):")
        us = int(await e1.aeval(f"bl_bench:calls('{e2.name}', {calls})", timeout=600))
        self.row("Erlang -> Erlang call", calls / (us / 1e6), "calls/s")
        for label, server_class in (("", Echo), (", on_loop", EchoOnLoop)):
            server = await server_class.start(node)
            us = int(await e1.aeval(f"bl_bench:calls('{py}', {calls})", timeout=600))
            self.row(f"Erlang -> Python call{label}", calls / (us / 1e6), "calls/s")
            server.proc.close()
            await server.proc.wait()
        seconds = await python_calls(node, (BENCH_GS, Atom(e2.name)), calls)
        self.row("Python -> Erlang call", calls / seconds, "calls/s")

        k = self.callers
        per = max(calls // k, 1)
        kind = f"calls/s ({k} callers)"
        print(f"gen_server calls, {k} concurrent callers x {per:,} sequential calls:")
        us = int(await e1.aeval(f"bl_bench:concurrent_calls('{e2.name}', {k}, {per})", timeout=600))
        self.row("Erlang -> Erlang call", k * per / (us / 1e6), kind)
        for label, server_class in (("", Echo), (", on_loop", EchoOnLoop)):
            server = await server_class.start(node)
            us = int(await e1.aeval(f"bl_bench:concurrent_calls('{py}', {k}, {per})", timeout=600))
            self.row(f"Erlang -> Python call{label}", k * per / (us / 1e6), kind)
            server.proc.close()
            await server.proc.wait()
        seconds = await python_concurrent_calls(node, (BENCH_GS, Atom(e2.name)), k, per)
        self.row("Python -> Erlang call", k * per / seconds, kind)

    async def rpc_calls(self, node: Node, e1: ErlPeer, e2: ErlPeer) -> None:
        calls, py = self.calls, str(node.name)
        node.rpc_server.resolver.modules[RPC_MODULE] = SimpleNamespace(
            echo=echo, echo_on_loop=echo_on_loop
        )
        print(f"rpc:call ({calls:,} sequential round trips, echo/1):")
        us = int(await e1.aeval(f"bl_bench:rpcs('{e2.name}', bl_bench, echo, {calls})", timeout=600))
        self.row("Erlang -> Erlang rpc", calls / (us / 1e6), "rpc/s")
        for label, function in (("sync", "echo"), ("on_loop", "echo_on_loop")):
            us = int(await e1.aeval(
                f"bl_bench:rpcs('{py}', {RPC_MODULE}, {function}, {calls})", timeout=600
            ))
            self.row(f"Erlang -> Python rpc, {label}", calls / (us / 1e6), "rpc/s")

    async def profiled_runs(self, node: Node, e1: ErlPeer, e2: ErlPeer) -> None:
        """cProfile of the Python receiver and sender (separate runs: profiling slows them)."""
        n, py = self.profile_count, str(node.name)
        await python_receiver(node, n, e1.name)
        with cProfile.Profile() as profile:
            await e1.aeval(f"bl_bench:send('{py}', {n})", timeout=600)
        profiled(f"Python receiving {n:,} messages", profile)
        await e2.aeval(f"bl_bench:start_rx({n}, '{py}')")
        with cProfile.Profile() as profile:
            await python_sender(node, e2.name, n)
        profiled(f"Python sending {n:,} messages", profile)
        if "binaries" in self.only:
            big = self.big
            await python_receiver(node, big, e1.name)
            with cProfile.Profile() as profile:
                await e1.aeval(f"bl_bench:send_bin('{py}', {big}, {1 << 20})", timeout=600)
            profiled(f"Python receiving {big:,} binaries of 1 MiB", profile)

    def report(self) -> None:
        refs = {unit: v for (label, unit), v in self.best.items() if label.startswith("Erlang -> Erlang")}
        print(f"\nbest of {self.rounds} round(s), each against the best Erlang->Erlang round; "
              "the median (range) of the rounds' own ratios; CPU per message (median):")
        print("| direction | rate | vs Erlang->Erlang | per round | CPU/msg tx / rx |\n"
              "|---|---:|---:|---:|---:|")
        for key, value in self.best.items():
            label, unit = key
            ratios = sorted(self.ratios.get(key, [0.0]))
            cpu = self.cpu.get(key)
            used = (f"{statistics.median(tx for tx, _ in cpu):.2f} / "
                    f"{statistics.median(rx for _, rx in cpu):.2f} us") if cpu else ""
            print(f"| {label} | {value:,.0f} {unit} | {value / refs[unit]:.2f} | "
                  f"{statistics.median(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f}) | {used} |")

    def close(self) -> None:
        for peer in self.peers:
            peer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="messages per direction")
    parser.add_argument("--calls", type=int, default=20_000, help="gen_server calls per direction")
    parser.add_argument("--callers", type=int, default=50, help="concurrent callers (--calls shared)")
    parser.add_argument("--senders", type=int, default=4, help="Erlang sender nodes at once")
    parser.add_argument("--big", type=int, default=200, help="1 MiB binaries per direction")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of everything; best kept")
    parser.add_argument("--profile", action="store_true", help="then profile the Python side")
    parser.add_argument("--profile-count", type=int, default=200_000, help="messages when profiling")
    parser.add_argument("--tls", action="store_true",
                        help="TLS distribution on every node (Erlang: -proto_dist inet_tls)")
    parser.add_argument("--only", default=SECTIONS, help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--erl-args", default="",
                        help='extra arguments of every Erlang node, e.g. "+S 1:1"')
    parser.add_argument("--uvloop", action="store_true",
                        help="run the Python nodes on uvloop (pip install beamlink[fast])")
    parser.add_argument("--serve-rx", help=argparse.SUPPRESS)
    parser.add_argument("--tx", help=argparse.SUPPRESS)
    args = parser.parse_args()
    # The Python->Python child inherits the choice through the environment.
    os.environ[eventloop.ENV] = "uvloop" if args.uvloop else "asyncio"
    if args.serve_rx:
        eventloop.run(serve_rx(args.serve_rx, args.count, args.tx))
        return
    bench = Bench(args)
    # A private EPMD, stopped at the end (every node, the children too, finds it through the
    # environment): another bench run on this host may hold the same node names.
    with tempfile.TemporaryDirectory(prefix="beamlink-bench-") as code_dir, real_epmd() as port:
        os.environ["ERL_EPMD_PORT"] = str(port)
        source = Path(code_dir) / "bl_bench.erl"
        source.write_text(ERLANG_SOURCE)
        subprocess.run(["erlc", "-o", code_dir, str(source)], check=True)
        if args.tls:
            from beamlink.cli.tls import tls_init

            files = tls_init(Path(code_dir) / "tls", [f"bench@{HOST}"])
            # Node.start (here and in the Python->Python child) reads the optfile from the env.
            os.environ["BEAMLINK_SSL_DIST_OPTFILE"] = str(files.optfile)
            bench.erl_args += ("-proto_dist", "inet_tls", "-ssl_dist_optfile", str(files.optfile))
            print(f"TLS distribution on every node ({files.optfile})")
        try:
            eventloop.run(bench.run(code_dir))
        finally:
            bench.close()


if __name__ == "__main__":
    main()
