"""RPC and GenServer on one runtime, without a network: the same code paths as remote calls
(spawn handlers, monitors, DOWN reasons, rex messages), driven through local processes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from beamlink.etf import Atom, ImproperList
from beamlink.node import genserver, rpc
from beamlink.node.errors import ProcessExit, ReceiveTimeout
from beamlink.node.genserver import NOREPLY, CallError, CallTimeout, GenServer
from beamlink.node.kernel.rex import install
from beamlink.node.runtime import ProcessRuntime, current_process, on_loop
from tests.rpc import sample_module

NODE = "py@127.0.0.1"
A = Atom
M = "tests.rpc.sample_module"


@pytest.fixture
async def rt() -> AsyncIterator[ProcessRuntime]:
    runtime = ProcessRuntime(NODE, 7)
    install(runtime, modules={"copy": sample_module})
    yield runtime
    procs = runtime.processes()
    for proc in procs:
        proc.close(A("kill"))
    await asyncio.gather(*(p.task for p in procs if p.task is not None), return_exceptions=True)


async def test_rpc_to_own_node_returns_values(rt: ProcessRuntime) -> None:
    assert await rpc.call(rt, NODE, M, "add", [1, 2]) == 3
    assert await rpc.call(rt, NODE, M, "slow_add", [1, 2, 0.01], timeout=5) == 3
    assert await rpc.call(rt, NODE, "copy", "identity", [[A("x"), b"y"]]) == [A("x"), b"y"]
    assert await rpc.call(rt, NODE, "os.path", "join", ["a", "b"]) == "a/b"


async def test_rpc_errors_are_typed(rt: ProcessRuntime) -> None:
    with pytest.raises(rpc.RemoteException) as info:
        await rpc.call(rt, NODE, M, "fail", [b"boom"])
    assert info.value.class_ == A("error")
    assert info.value.reason == (A("python_exception"), b"ValueError", b"boom")
    assert info.value.stack and info.value.stack[0][1] == A("fail")
    with pytest.raises(rpc.RemoteException) as info:
        await rpc.call(rt, NODE, M, "throw", [A("t")])
    assert (info.value.class_, info.value.reason) == (A("throw"), A("t"))
    with pytest.raises(rpc.RemoteException) as info:
        await rpc.call(rt, NODE, M, "nope", [])
    assert info.value.reason == A("undef")
    with pytest.raises(rpc.RpcTimeout):
        await rpc.call(rt, NODE, M, "slow_add", [1, 2, 5], timeout=0.05)


async def test_rpc_from_a_process_body_and_cast(rt: ProcessRuntime) -> None:
    got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def body(proc: Any) -> None:
        got.set_result(await rpc.call(rt, NODE, M, "add", [2, 3]))

    rt.spawn(body)
    assert await asyncio.wait_for(got, 5) == 5
    sink = rt.new_process(name="sink")
    rpc.cast(rt, NODE, "erlang", "node", [])
    rpc.cast(rt, NODE, M, "fail", [b"ignored"])
    await asyncio.sleep(0.01)
    assert sink.is_alive and len(sink.mailbox) == 0


async def test_rex_answers_features_request_and_old_call_forms(rt: ProcessRuntime) -> None:
    with rt.new_process() as me:
        me.send("rex", (me.pid, A("features_request")))
        assert await me.receive(timeout=2) == (A("features_reply"), A(NODE), [A("erpc")])
        me.send("rex", (me.pid, (A("call"), A(M), A("add"), [4, 5], A("user"))))
        assert await me.receive(timeout=2) == (A("rex"), 9)
        me.send("rex", (me.pid, (A("call"), A(M), A("fail"), [b"x"], A("user"))))
        reply = await me.receive(timeout=2)
        assert reply[0] == A("rex") and reply[1][0] == A("badrpc")
        assert reply[1][1][0] == A("EXIT") and reply[1][1][1][0][1] == b"ValueError"


async def test_rex_gen_server_call_and_sbcast(rt: ProcessRuntime) -> None:
    request = (A("call"), A(M), A("add"), [1, 1], A("user"))
    assert await genserver.call(rt, "rex", request) == 2
    rt.new_process(name="target")
    with rt.new_process() as me:
        me.send("rex", (me.pid, (A("sbcast"), A("target"), A("hi"))))
        assert await me.receive(timeout=2) == (A("rex"), A(NODE), A(NODE))
        me.send("rex", (me.pid, (A("sbcast"), A("absent"), A("hi"))))
        assert await me.receive(timeout=2) == (A("rex"), A(NODE), (A("nonexisting_name"), A("absent")))


class Counter(GenServer):
    name = "counter"

    def init(self, start: int = 0) -> None:
        self.count = start
        self.infos: list[Any] = []
        self.pending: Any = None

    async def handle_call(self, request: Any, from_: Any) -> Any:
        if request == A("get"):
            return self.count
        if request == A("later"):
            self.pending = from_
            return NOREPLY
        if request == A("crash"):
            raise RuntimeError("asked to crash")
        if request == A("stop"):
            self.stop(A("shutdown"))
            return A("stopping")
        return (A("unknown"), request)

    def handle_cast(self, msg: Any) -> None:
        if msg == A("release"):
            self.reply(self.pending, A("released"))
        else:
            self.count += msg

    def handle_info(self, msg: Any) -> None:
        self.infos.append(msg)


async def test_genserver_call_cast_info(rt: ProcessRuntime) -> None:
    server = await Counter.start(rt, 10)
    assert rt.whereis("counter") == server.pid
    assert await genserver.call(rt, "counter", A("get")) == 10
    genserver.cast(rt, "counter", 5)
    assert await genserver.call(rt, (A("counter"), A(NODE)), A("get")) == 15
    rt.send("counter", A("plain"))
    assert await genserver.call(rt, server.pid, A("get")) == 15
    assert server.infos == [A("plain")]  # type: ignore[attr-defined]
    later = asyncio.ensure_future(genserver.call(rt, "counter", A("later")))
    await asyncio.sleep(0.01)
    assert not later.done()
    genserver.cast(rt, "counter", A("release"))
    assert await later == A("released")


async def test_genserver_replies_to_alias_tags(rt: ProcessRuntime) -> None:
    await Counter.start(rt, 1)
    with rt.new_process() as me:
        alias = me.alias()
        tag = ImproperList((A("alias"),), alias)
        me.send("counter", (A("$gen_call"), (me.pid, tag), A("get")))
        assert await me.receive(timeout=2) == (tag, 1)


async def test_call_failures_are_immediate_and_typed(rt: ProcessRuntime) -> None:
    with pytest.raises(CallError) as info:
        await genserver.call(rt, "nobody", A("get"), timeout=30)
    assert info.value.reason == A("noproc")
    server = await Counter.start(rt)
    with pytest.raises(CallError) as info:
        await genserver.call(rt, "counter", A("crash"), timeout=30)
    assert info.value.reason[:2] == (A("python_exception"), b"RuntimeError")
    assert not server.proc.is_alive
    await Counter.start(rt)
    with pytest.raises(CallTimeout):
        await genserver.call(rt, "counter", A("later"), timeout=0.05)


class Held(GenServer):
    """Holds every call until a cast says how to answer them."""

    name = "held"

    def init(self) -> None:
        self.froms: list[Any] = []

    def handle_call(self, request: Any, from_: Any) -> Any:
        if request == A("now"):
            return A("now")
        self.froms.append((from_, request))
        return NOREPLY

    def handle_cast(self, msg: Any) -> None:
        if msg == A("reversed"):
            for from_, request in reversed(self.froms):
                self.reply(from_, request)
            self.froms.clear()
        elif msg == A("kill_caller"):
            self.proc.exit(self.froms[0][0][0], A("kill"))


async def test_calls_share_one_caller_and_get_their_own_replies(rt: ProcessRuntime) -> None:
    server = await Held.start(rt)
    before = len(rt.processes())
    calls = [asyncio.ensure_future(genserver.call(rt, "held", i)) for i in range(20)]
    await asyncio.sleep(0.05)
    froms = server.froms  # type: ignore[attr-defined]
    assert len(froms) == 20 and len({from_[0] for from_, _ in froms}) == 1
    assert len(rt.processes()) == before + 1  # one caller process, not one per call
    genserver.cast(rt, "held", A("reversed"))
    assert await asyncio.gather(*calls) == list(range(20))
    # A reply after the timeout is dropped: the next call gets its own reply, nothing queues.
    with pytest.raises(CallTimeout):
        await genserver.call(rt, "held", A("late"), timeout=0.05)
    genserver.cast(rt, "held", A("reversed"))
    assert await genserver.call(rt, "held", A("now")) == A("now")
    (pid,) = {p.pid for p in rt.processes()} - {server.pid} - {
        rt.whereis(name) for name in rt.registered()
    }
    caller_proc = rt.process(pid)
    assert caller_proc is not None and len(caller_proc.mailbox) == 0
    assert not caller_proc.monitors
    # A caller killed under a pending call fails that call; the next call gets a new caller.
    pending = asyncio.ensure_future(genserver.call(rt, "held", A("stuck"), timeout=30))
    await asyncio.sleep(0.01)
    genserver.cast(rt, "held", A("kill_caller"))
    with pytest.raises(ProcessExit):
        await pending
    assert not caller_proc.is_alive
    assert await genserver.call(rt, "held", A("now")) == A("now")


async def test_genserver_stop_runs_terminate(rt: ProcessRuntime) -> None:
    reasons: list[Any] = []

    class Stoppable(Counter):
        def terminate(self, reason: Any) -> None:
            reasons.append(reason)

    server = await Stoppable.start(rt, name="stoppable")
    assert await genserver.call(rt, "stoppable", A("stop")) == A("stopping")
    assert await server.proc.wait() == A("shutdown")
    assert reasons == [A("shutdown")]


async def test_genserver_terminate_at_node_stop_gets_shutdown(rt: ProcessRuntime) -> None:
    reasons: list[Any] = []

    class Server(GenServer):
        def terminate(self, reason: Any) -> None:
            reasons.append(reason)

    server = await Server.start(rt)
    await rt.shutdown()
    assert reasons == [A("shutdown")]
    assert server.proc.exit_reason == A("shutdown")


async def test_genserver_init_failure_raises_from_start(rt: ProcessRuntime) -> None:
    class Broken(GenServer):
        def init(self) -> None:
            raise ValueError("no")

    with pytest.raises(ValueError):
        await Broken.start(rt)


class Batched(GenServer):
    """Plain handle_call (worker pool) between an on_loop handle_cast and an async handle_info."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Any] = []
        self.threads: set[int] = set()

    def handle_call(self, request: Any, from_: Any) -> Any:
        self.seen.append(request)
        self.threads.add(threading.get_ident())
        if request == A("stop"):
            self.stop(A("normal"))
            return A("stopping")
        return request * 2

    @on_loop
    def handle_cast(self, msg: Any) -> None:
        self.seen.append(("cast", msg))

    async def handle_info(self, msg: Any) -> None:
        self.seen.append(("info", msg))


async def test_queued_messages_of_a_pooled_server_keep_their_order(rt: ProcessRuntime) -> None:
    # Everything is queued before the server runs again, so the plain handle_calls go to the
    # worker pool in batches, broken by the cast and the info (which run on the loop).
    server = await Batched.start(rt, name="batched")
    jobs = rt.executor.completed
    with rt.new_process() as me:
        expected: list[Any] = []
        for i in range(150):
            if i == 50:
                me.send("batched", (A("$gen_cast"), i))
                expected.append(("cast", i))
            elif i == 90:
                me.send("batched", A("plain"))
                expected.append(("info", A("plain")))
            else:
                me.send("batched", (A("$gen_call"), (me.pid, i), i))
                expected.append(i)
        replies = [await me.receive(timeout=10) for _ in range(148)]
    assert replies == [(i, 2 * i) for i in range(150) if i not in (50, 90)]
    assert server.seen == expected
    assert threading.get_ident() not in server.threads
    # 148 calls in a handful of worker jobs (batches of up to BATCH, cut by the cast and info).
    assert rt.executor.completed - jobs <= 8


async def test_stop_in_a_batch_drops_the_messages_behind_it(rt: ProcessRuntime) -> None:
    server = await Batched.start(rt, name="batched")
    with rt.new_process() as me:
        for request in (1, A("stop"), 3):
            me.send("batched", (A("$gen_call"), (me.pid, request), request))
        assert await me.receive(timeout=10) == (1, 2)
        assert await me.receive(timeout=10) == (A("stop"), A("stopping"))
        assert await server.proc.wait() == A("normal")
        with pytest.raises(ReceiveTimeout):
            await me.receive(timeout=0.2)
    assert server.seen == [1, A("stop")]


class Inline(GenServer):
    """Synchronous on_loop callbacks: each runs straight from the delivery of its message."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Any] = []
        self.procs: list[Any] = []
        self.reasons: list[Any] = []

    @on_loop
    def handle_call(self, request: Any, from_: Any) -> Any:
        self.seen.append(request)
        self.procs.append(current_process())
        if request == A("crash"):
            raise RuntimeError("asked to crash")
        if request == A("stop"):
            self.stop(A("done"))
            return A("stopping")
        if request == A("echo_self"):  # a message to itself waits for this callback to return
            self.send(self.pid, A("to_self"))
            self.seen.append(A("sent"))
        if request == A("awaitable"):
            return asyncio.sleep(0, result=A("awaited"))
        return request

    @on_loop
    def handle_cast(self, msg: Any) -> None:
        self.seen.append(("cast", msg))

    @on_loop
    def handle_info(self, msg: Any) -> None:
        self.seen.append(("info", msg))

    @on_loop
    def terminate(self, reason: Any) -> None:
        self.reasons.append(reason)


async def test_on_loop_callbacks_run_at_delivery(rt: ProcessRuntime) -> None:
    server = await Inline.start(rt, name="inline")
    await asyncio.sleep(0)  # the server waits for its first message
    with rt.new_process() as me:
        me.send("inline", (A("$gen_call"), (me.pid, 1), A("x")))
        # Handled and answered inside the send: the reply is already queued.
        assert me.mailbox.peek() == [(1, A("x"))]
        me.send("inline", (A("$gen_cast"), 2))
        me.send("inline", A("plain"))
        assert server.seen == [A("x"), ("cast", 2), ("info", A("plain"))]  # type: ignore[attr-defined]
        assert server.procs == [server.proc]  # type: ignore[attr-defined]
        me.send("inline", (A("$gen_call"), (me.pid, 3), A("echo_self")))
        assert await me.receive(timeout=2) == (1, A("x"))
        assert await me.receive(timeout=2) == (3, A("echo_self"))
        me.send("inline", (A("$gen_call"), (me.pid, 4), A("awaitable")))
        assert await me.receive(timeout=2) == (4, A("awaited"))
        assert await genserver.call(rt, "inline", A("y")) == A("y")
    assert server.seen == [  # type: ignore[attr-defined]
        A("x"), ("cast", 2), ("info", A("plain")), A("echo_self"), A("sent"),
        ("info", A("to_self")), A("awaitable"), A("y"),
    ]


async def test_on_loop_call_exception_and_stop_end_the_server(rt: ProcessRuntime) -> None:
    server = await Inline.start(rt, name="inline")
    with pytest.raises(CallError) as info:
        await genserver.call(rt, "inline", A("crash"), timeout=30)
    assert info.value.reason[:2] == (A("python_exception"), b"RuntimeError")
    await server.proc.wait()
    assert isinstance(server.reasons[0], RuntimeError)  # type: ignore[attr-defined]
    server = await Inline.start(rt, name="inline")
    await asyncio.sleep(0)
    with rt.new_process() as me:
        me.send("inline", (A("$gen_call"), (me.pid, 1), A("stop")))
        me.send("inline", (A("$gen_call"), (me.pid, 2), A("late")))
        assert await me.receive(timeout=2) == (1, A("stopping"))
        assert await server.proc.wait() == A("done")
        with pytest.raises(ReceiveTimeout):
            await me.receive(timeout=0.2)
    assert server.seen == [A("stop")]  # type: ignore[attr-defined]
    assert server.reasons == [A("done")]  # type: ignore[attr-defined]
