"""The runtime as a signal machine: control messages in through `dispatch`, control messages out
through the transport, checked tuple by tuple (the wire behaviour against real Erlang is in
tests/interop/test_node_*.py)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from beamlink.distribution import control as ctl
from beamlink.distribution.control import NO_MESSAGE
from beamlink.etf import Atom, Charlist, ImproperList, Pid, Reference
from beamlink.node.errors import ProcessExit
from beamlink.node.runtime import Process, ProcessRuntime

A = Atom
NODE = A("py@127.0.0.1")
PEER = A("erl@127.0.0.1")
RPID = Pid(PEER, 90, 0, 5)
RREF = Reference(PEER, 5, (1, 2, 3))


class Wire:
    """Collects what the runtime sends; `up` says whether the peer counts as connected."""

    def __init__(self) -> None:
        self.sent: list[tuple[Atom, tuple[Any, ...], Any]] = []
        self.up = True
        self.connects: list[Atom] = []
        self.connect_result = True

    def send(self, peer: Atom, control: tuple[Any, ...], message: Any) -> bool:
        if not self.up:
            return False
        self.sent.append((peer, control, message))
        return True

    async def connect(self, peer: Atom) -> bool:
        self.connects.append(peer)
        await asyncio.sleep(0.01)
        self.up = self.connect_result
        return self.connect_result

    def ops(self) -> list[int]:
        return [c[0] for _, c, _ in self.sent]


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.fixture
def rt(wire: Wire) -> ProcessRuntime:
    return ProcessRuntime(NODE, 9, send_remote=wire.send, connect_peer=wire.connect)


async def idle(proc: Process) -> None:
    await proc.receive(lambda m: m == A("stop"))


async def test_incoming_sends_reach_the_mailbox(rt: ProcessRuntime) -> None:
    with rt.new_process(name="box") as me:
        alias = me.alias()
        rt.dispatch(PEER, ctl.send(me.pid), 1)
        rt.dispatch(PEER, ctl.send_sender(RPID, me.pid), 2)
        rt.dispatch(PEER, ctl.reg_send(RPID, A("box")), 3)
        rt.dispatch(PEER, ctl.alias_send(RPID, alias), 4)
        rt.dispatch(PEER, (ctl.SEND_TT, A(""), me.pid, A("token")), 5)
        rt.dispatch(PEER, (ctl.REG_SEND_TT, RPID, A(""), A("box"), A("token")), 6)
        rt.dispatch(PEER, (ctl.ALIAS_SEND_TT, RPID, alias, A("token")), 7)
        rt.dispatch(PEER, ctl.reg_send(RPID, A("nobody")), 8)
        assert me.mailbox.peek() == [1, 2, 3, 4, 5, 6, 7]


async def test_a_read_of_messages_is_applied_in_order_past_bad_ones(
    rt: ProcessRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    """`dispatch_all` (one call per read): a malformed control message and a failing handler
    are logged, the messages after them still arrive, and the counters count the batch."""

    def failing(peer: Atom, control: tuple[Any, ...], message: Any) -> None:
        raise RuntimeError("handler broke")

    rt._handlers[99] = failing
    with rt.new_process(name="box") as me:
        before = rt.delivered_remote, rt.dropped
        with caplog.at_level(logging.WARNING, logger="beamlink.node"):
            rt.dispatch_all(PEER, [
                (ctl.send(me.pid), 1),
                ((ctl.SEND,), 2),  # no destination: malformed
                ((99, RPID), 3),  # its handler raises
                (ctl.reg_send(RPID, A("nobody")), 4),  # dropped
                (ctl.reg_send(RPID, A("box")), 5),
            ])
        assert me.mailbox.peek() == [1, 5]
        assert (rt.delivered_remote, rt.dropped) == (before[0] + 2, before[1] + 1)
    logged = [r.getMessage() for r in caplog.records]
    assert any("malformed control message" in m for m in logged)
    assert any("handler failed" in m for m in logged)


async def test_outgoing_sends_use_send_reg_send_and_alias_send(
    rt: ProcessRuntime, wire: Wire
) -> None:
    with rt.new_process() as me:
        me.send(RPID, "a")
        me.send((A("srv"), PEER), "b")
        me.send(RREF, "c")
    assert wire.sent == [
        (PEER, (ctl.SEND, A(""), RPID), "a"),
        (PEER, (ctl.REG_SEND, me.pid, A(""), A("srv")), "b"),
        (PEER, (ctl.ALIAS_SEND, me.pid, RREF), "c"),
    ]


async def test_monitor_p_on_unknown_name_is_answered_noproc_at_once(
    rt: ProcessRuntime, wire: Wire
) -> None:
    rt.dispatch(PEER, ctl.monitor_p(RPID, A("net_kernel"), RREF), NO_MESSAGE)
    assert wire.sent == [
        (PEER, ctl.monitor_p_exit(A("net_kernel"), RPID, RREF, A("noproc")), NO_MESSAGE)
    ]


async def test_remote_monitor_by_name_and_pid_fire_with_reason(
    rt: ProcessRuntime, wire: Wire
) -> None:
    proc = rt.spawn(idle, name="svc")
    ref2 = Reference(PEER, 5, (4, 5, 6))
    rt.dispatch(PEER, ctl.monitor_p(RPID, A("svc"), RREF), NO_MESSAGE)
    rt.dispatch(PEER, ctl.monitor_p(RPID, proc.pid, ref2), NO_MESSAGE)
    proc.close(A("bye"))
    assert sorted(wire.sent, key=repr) == sorted(
        [
            (PEER, ctl.monitor_p_exit(A("svc"), RPID, RREF, A("bye")), NO_MESSAGE),
            (PEER, ctl.monitor_p_exit(proc.pid, RPID, ref2, A("bye")), NO_MESSAGE),
        ],
        key=repr,
    )


async def test_demonitor_p_removes_the_monitor(rt: ProcessRuntime, wire: Wire) -> None:
    proc = rt.spawn(idle)
    rt.dispatch(PEER, ctl.monitor_p(RPID, proc.pid, RREF), NO_MESSAGE)
    rt.dispatch(PEER, ctl.demonitor_p(RPID, proc.pid, RREF), NO_MESSAGE)
    proc.close(A("bye"))
    assert wire.sent == []


async def test_outgoing_monitor_and_down_from_peer(rt: ProcessRuntime, wire: Wire) -> None:
    with rt.new_process() as me:
        ref = me.monitor(RPID)
        ref_name = me.monitor((A("srv"), PEER))
        assert wire.sent == [
            (PEER, ctl.monitor_p(me.pid, RPID, ref), NO_MESSAGE),
            (PEER, ctl.monitor_p(me.pid, A("srv"), ref_name), NO_MESSAGE),
        ]
        rt.dispatch(PEER, ctl.monitor_p_exit(RPID, me.pid, ref, A("r1")), NO_MESSAGE)
        rt.dispatch(PEER, ctl.payload_monitor_p_exit(A("srv"), me.pid, ref_name), A("r2"))
        rt.dispatch(PEER, ctl.monitor_p_exit(RPID, me.pid, ref, A("again")), NO_MESSAGE)
        assert me.mailbox.peek() == [
            (A("DOWN"), ref, A("process"), RPID, A("r1")),
            (A("DOWN"), ref_name, A("process"), (A("srv"), PEER), A("r2")),
        ]
        wire.sent.clear()
        ref3 = me.monitor(RPID)
        assert me.demonitor(ref3)
        assert wire.sent[-1] == (PEER, ctl.demonitor_p(me.pid, RPID, ref3), NO_MESSAGE)
        ref4 = me.monitor(RPID)
    assert wire.sent[-1] == (PEER, ctl.demonitor_p(me.pid, RPID, ref4), NO_MESSAGE)


async def test_incoming_link_then_exit_sends_exit(rt: ProcessRuntime, wire: Wire) -> None:
    proc = rt.spawn(idle)
    rt.dispatch(PEER, ctl.link(RPID, proc.pid), NO_MESSAGE)
    proc.close(A("boom"))
    assert wire.sent == [(PEER, ctl.exit_signal(proc.pid, RPID, A("boom")), NO_MESSAGE)]


async def test_incoming_link_to_dead_pid_answers_noproc(rt: ProcessRuntime, wire: Wire) -> None:
    ghost = Pid(NODE, 4000, 0, 9)
    rt.dispatch(PEER, ctl.link(RPID, ghost), NO_MESSAGE)
    assert wire.sent == [(PEER, ctl.exit_signal(ghost, RPID, A("noproc")), NO_MESSAGE)]


@pytest.mark.parametrize("trap", [False, True])
async def test_incoming_exit_variants(rt: ProcessRuntime, trap: bool) -> None:
    for control, message in [
        (ctl.exit_signal(RPID, None, A("r")), NO_MESSAGE),
        ((ctl.EXIT_TT, RPID, None, A("tok"), A("r")), NO_MESSAGE),
        (ctl.payload_exit(RPID, None), A("r")),
        ((ctl.PAYLOAD_EXIT_TT, RPID, None, A("tok")), A("r")),
    ]:
        proc = rt.spawn(idle, trap_exit=trap)
        rt.dispatch(PEER, ctl.link(RPID, proc.pid), NO_MESSAGE)
        rt.dispatch(PEER, tuple(proc.pid if x is None else x for x in control), message)
        if trap:
            assert proc.mailbox.peek() == [(A("EXIT"), RPID, A("r"))]
            proc.close()
        else:
            assert proc.exit_reason == A("r")


async def test_exit_without_link_is_ignored_but_exit2_is_not(rt: ProcessRuntime) -> None:
    proc = rt.spawn(idle)
    rt.dispatch(PEER, ctl.exit_signal(RPID, proc.pid, A("r")), NO_MESSAGE)
    assert proc.is_alive
    rt.dispatch(PEER, ctl.exit2(RPID, proc.pid, A("normal")), NO_MESSAGE)
    assert proc.is_alive
    rt.dispatch(PEER, ctl.payload_exit2(RPID, proc.pid), A("r2"))
    assert proc.exit_reason == A("r2")
    trapper = rt.spawn(idle, trap_exit=True)
    rt.dispatch(PEER, (ctl.EXIT2_TT, RPID, trapper.pid, A("tok"), A("r3")), NO_MESSAGE)
    rt.dispatch(PEER, ctl.exit2(RPID, trapper.pid, A("kill")), NO_MESSAGE)
    assert trapper.mailbox.peek() == [] and trapper.exit_reason == A("killed")


async def test_incoming_unlink_id_removes_link_and_acks(rt: ProcessRuntime, wire: Wire) -> None:
    proc = rt.spawn(idle)
    rt.dispatch(PEER, ctl.link(RPID, proc.pid), NO_MESSAGE)
    rt.dispatch(PEER, ctl.unlink_id(77, RPID, proc.pid), NO_MESSAGE)
    assert wire.sent == [(PEER, ctl.unlink_id_ack(77, proc.pid, RPID), NO_MESSAGE)]
    assert not proc.links
    proc.close(A("boom"))
    assert len(wire.sent) == 1


async def test_outgoing_unlink_ignores_exits_until_ack(rt: ProcessRuntime, wire: Wire) -> None:
    with rt.new_process() as me:
        me.link(RPID)
        me.unlink(RPID)
        (_, link_msg, _), (_, unlink_msg, _) = wire.sent
        assert link_msg == ctl.link(me.pid, RPID)
        assert unlink_msg[0] == ctl.UNLINK_ID and unlink_msg[2:] == (me.pid, RPID)
        uid = unlink_msg[1]
        rt.dispatch(PEER, ctl.exit_signal(RPID, me.pid, A("late")), NO_MESSAGE)
        assert me.is_alive and me.links == {RPID: uid}
        rt.dispatch(PEER, ctl.unlink_id_ack(uid + 1000, RPID, me.pid), NO_MESSAGE)
        assert me.links == {RPID: uid}
        rt.dispatch(PEER, ctl.unlink_id_ack(uid, RPID, me.pid), NO_MESSAGE)
        assert me.links == {}
        me.link(RPID)
        me.unlink(RPID)
        me.link(RPID)
        uid2 = wire.sent[-2][1][1]
        rt.dispatch(PEER, ctl.unlink_id_ack(uid2, RPID, me.pid), NO_MESSAGE)
        assert me.links == {RPID: 0}
        rt.dispatch(PEER, ctl.exit_signal(RPID, me.pid, A("now")), NO_MESSAGE)
        assert me.exit_reason == A("now")


async def test_node_down_sends_noconnection(rt: ProcessRuntime, wire: Wire) -> None:
    trapper = rt.new_process(trap_exit=True)
    trapper.link(RPID)
    ref = trapper.monitor((A("srv"), PEER))
    plain = rt.new_process()
    plain.link(RPID)
    target = rt.spawn(idle)
    rt.dispatch(PEER, ctl.monitor_p(RPID, target.pid, RREF), NO_MESSAGE)
    req = trapper.spawn_request(PEER, "m", "f", [])
    other = rt.new_process()
    other.link(Pid(A("other@127.0.0.1"), 1, 0, 1))
    wire.sent.clear()
    rt.node_down(PEER)
    assert trapper.mailbox.peek() == [
        (A("EXIT"), RPID, A("noconnection")),
        (A("DOWN"), ref, A("process"), (A("srv"), PEER), A("noconnection")),
        (A("spawn_reply"), req, A("error"), A("noconnection")),
    ]
    assert plain.exit_reason == A("noconnection")
    assert not target.monitored_by
    assert other.is_alive and other.links
    target.close(A("x"))
    assert wire.sent == []
    for p in (trapper, other):
        p.close()


async def test_spawn_request_served_with_link_and_monitor(rt: ProcessRuntime, wire: Wire) -> None:
    async def add(proc: Process, a: int, b: int) -> None:
        raise ProcessExit(a + b)

    rt.spawn_handlers[(A("calc"), A("add"), 2)] = add
    req = Reference(PEER, 5, (9, 9, 9))
    opts = [A("link"), A("monitor"), (A("reply"), A("yes"))]
    rt.dispatch(PEER, ctl.spawn_request(req, RPID, RPID, (A("calc"), A("add"), 2), opts), [2, 3])
    _, reply, _ = wire.sent[0]
    assert reply[:4] == (ctl.SPAWN_REPLY, req, RPID, 3)
    child = reply[4]
    assert isinstance(child, Pid) and child.node == NODE
    await asyncio.sleep(0.05)
    assert sorted(wire.sent[1:], key=repr) == sorted(
        [
            (PEER, ctl.exit_signal(child, RPID, 5), NO_MESSAGE),
            (PEER, ctl.monitor_p_exit(child, RPID, req, 5), NO_MESSAGE),
        ],
        key=repr,
    )


async def test_spawn_request_for_unknown_mfa_exits_undef(rt: ProcessRuntime, wire: Wire) -> None:
    req = Reference(PEER, 5, (8, 8, 8))
    rt.dispatch(
        PEER,
        (ctl.SPAWN_REQUEST_TT, req, RPID, RPID, (A("no"), A("such"), 1), [A("monitor")], A("t")),
        [1],
    )
    await asyncio.sleep(0.05)
    child = wire.sent[0][1][4]
    assert wire.sent[0][1][3] == 2
    assert wire.sent[1] == (
        PEER,
        ctl.monitor_p_exit(child, RPID, req, (A("undef"), [(A("no"), A("such"), [1], [])])),
        NO_MESSAGE,
    )


async def test_outgoing_spawn_request_and_reply(rt: ProcessRuntime, wire: Wire) -> None:
    with rt.new_process() as me:
        req = me.spawn_request(str(PEER), "erlang", "apply", [1, 2], link=True, monitor=True)
        assert wire.sent[0][1] == ctl.spawn_request(
            req, me.pid, me.pid, (A("erlang"), A("apply"), 2), [A("link"), A("monitor")]
        )
        assert wire.sent[0][2] == [1, 2]
        rt.dispatch(PEER, ctl.spawn_reply(req, me.pid, 3, RPID), NO_MESSAGE)
        assert await me.receive(timeout=1) == (A("spawn_reply"), req, A("ok"), RPID)
        assert me.links == {RPID: 0} and req in me.monitors
        rt.dispatch(PEER, ctl.monitor_p_exit(RPID, me.pid, req, A("done")), NO_MESSAGE)
        assert await me.receive(timeout=1) == (A("DOWN"), req, A("process"), RPID, A("done"))
        req2 = me.spawn_request(PEER, "m", "f", [])
        rt.dispatch(PEER, ctl.spawn_reply(req2, me.pid, 0, A("badopt")), NO_MESSAGE)
        assert await me.receive(timeout=1) == (A("spawn_reply"), req2, A("error"), A("badopt"))


async def test_send_to_unconnected_node_connects_and_keeps_order(
    rt: ProcessRuntime, wire: Wire
) -> None:
    wire.up = False
    with rt.new_process() as me:
        for i in range(5):
            me.send(RPID, i)
        await asyncio.sleep(0.05)
    assert wire.connects == [PEER]
    assert [m for _, _, m in wire.sent] == [0, 1, 2, 3, 4]


async def test_failed_auto_connect_gives_noconnection(rt: ProcessRuntime, wire: Wire) -> None:
    wire.up = False
    wire.connect_result = False
    with rt.new_process() as me:
        me.send(RPID, "lost")
        ref = me.monitor(RPID)
        assert await me.receive(timeout=1) == (
            A("DOWN"),
            ref,
            A("process"),
            RPID,
            A("noconnection"),
        )
    assert wire.sent == []


MALFORMED = "malformed control message"


@pytest.mark.parametrize(
    ("control", "logged"),
    [
        ((), (logging.WARNING, MALFORMED)),
        ((ctl.LINK,), (logging.WARNING, MALFORMED)),
        ((ctl.MONITOR_P, 1, 2), (logging.WARNING, MALFORMED)),
        ((ctl.SPAWN_REQUEST, 1, 2, 3, 4, 5), (logging.WARNING, MALFORMED)),
        ((ctl.SEND,), (logging.WARNING, MALFORMED)),
        ((999, 1), (logging.DEBUG, "ignored control message")),
        # Acks and replies nobody waits for are dropped quietly, as OTP does.
        ((ctl.UNLINK_ID_ACK, 1, 2, 3), None),
        ((ctl.SPAWN_REPLY, RREF, RPID, A("x"), 1), None),
    ],
)
async def test_malformed_control_messages_are_logged_and_later_messages_arrive(
    rt: ProcessRuntime,
    control: tuple[Any, ...],
    logged: tuple[int, str] | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with rt.new_process(name="box") as me, caplog.at_level(logging.DEBUG, logger="beamlink.node"):
        rt.dispatch(PEER, ctl.send(me.pid), "before")
        rt.dispatch(PEER, control, NO_MESSAGE)
        rt.dispatch(PEER, ctl.send(me.pid), "after")
        rt.dispatch(PEER, ctl.reg_send(RPID, A("box")), "by name")
        assert [await me.receive(timeout=1) for _ in range(3)] == ["before", "after", "by name"]
    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "beamlink.node"]
    if logged is None:
        assert records == []
    else:
        level, text = logged
        [(got_level, message)] = [(lv, m) for lv, m in records if text in m]
        assert got_level == level and str(PEER) in message


async def test_malformed_control_warnings_are_rate_limited_per_peer(
    rt: ProcessRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="beamlink.node"):
        for _ in range(50):
            rt.dispatch(PEER, (ctl.LINK,), NO_MESSAGE)
        rt.dispatch(A("other@127.0.0.1"), (ctl.LINK,), NO_MESSAGE)
    warnings = [r.getMessage() for r in caplog.records if MALFORMED in r.getMessage()]
    assert len(warnings) == 2 and "other@127.0.0.1" in warnings[1]


async def test_gen_call_tag_shapes_round_trip(rt: ProcessRuntime) -> None:
    """An [alias|Ref] tag arrives as an ImproperList and must compare equal to itself."""
    tag = ImproperList([A("alias")], RREF)
    with rt.new_process(name="x") as me:
        rt.dispatch(PEER, ctl.reg_send(RPID, A("x")), (A("$gen_call"), (RPID, tag), A("req")))
        assert (await me.receive(timeout=1))[1][1] == ImproperList((A("alias"),), RREF)


async def test_spawn_request_args_as_erlang_string(rt: ProcessRuntime, wire: Wire) -> None:
    """``[1, 2]`` from Erlang travels as STRING_EXT and decodes as a Charlist: the handler still
    gets integers, and an undef reason sends the arguments back exactly as they came."""
    got: list[Any] = []

    async def take(proc: Process, a: int, b: int) -> None:
        got.append((a, b))

    rt.spawn_handlers[(A("m"), A("take"), 2)] = take
    rt.dispatch(
        PEER, ctl.spawn_request(RREF, RPID, RPID, (A("m"), A("take"), 2), []), Charlist("\x01\x02")
    )
    rt.dispatch(
        PEER,
        ctl.spawn_request(RREF, RPID, RPID, (A("m"), A("none"), 1), [A("monitor")]),
        Charlist("\x07"),
    )
    await asyncio.sleep(0.05)
    assert got == [(1, 2)]
    assert wire.sent[-1][1][4] == (A("undef"), [(A("m"), A("none"), Charlist("\x07"), [])])
