"""The sans-I/O pg scope (`beamlink.node.kernel.pg.core`) against simple models.

One scope against a model of memberships (a multiset per origin) under random joins, leaves,
crashes, discovers, syncs and peer DOWNs; and three scopes on a simulated network (FIFO per
direction, noconnect sends dropped while disconnected, DOWN of the peer scope on a disconnect,
discover on nodeup) that must agree on every group once the network heals and is drained.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from beamlink.etf import Atom, Pid
from beamlink.node.atoms import GEN_CAST
from beamlink.node.kernel.pg.core import (
    DISCOVER,
    JOIN,
    LEAVE,
    SYNC,
    Demonitor,
    Effect,
    Monitor,
    Notify,
    ScopeState,
    Send,
)

SCOPE = Atom("pg")
GROUPS = [Atom("a"), b"b", (Atom("c"), 1)]
NODES = [Atom(f"n{i}@h") for i in range(3)]


def pid(node: Atom, n: int) -> Pid:
    return Pid(node, n, 0, 1)


def replay(notifications: list[Notify]) -> Counter[tuple[Any, Pid]]:
    seen: Counter[tuple[Any, Pid]] = Counter()
    for note in notifications:
        for p in note.pids:
            seen[(note.group, p)] += 1 if note.action == JOIN else -1
    return +seen


def table(state: ScopeState) -> Counter[tuple[Any, Pid]]:
    return Counter((g, p) for g in state.which_groups() for p in state.members(g))


def test_join_leave_and_down_messages() -> None:
    me, peer = pid(NODES[0], 1), pid(NODES[1], 1)
    state = ScopeState(SCOPE, me)
    worker = pid(NODES[0], 7)
    assert state.discover(peer) == [
        Send(peer, (GEN_CAST, (SYNC, me, []))),
        Monitor(peer),
        Send(peer, (DISCOVER, me)),
    ]
    effects = state.join_local(GROUPS[0], [worker, worker])
    assert Monitor(worker) in effects
    assert Send(peer, (JOIN, me, GROUPS[0], [worker, worker])) in effects
    assert state.members(GROUPS[0]) == [worker, worker]
    left, effects = state.leave_local(GROUPS[0], [worker])
    assert left and Send(peer, (LEAVE, me, worker, [GROUPS[0]])) in effects
    assert Demonitor(worker) not in effects  # still a member once
    assert state.leave_local(GROUPS[1], [worker]) == (False, [])
    effects = state.down(worker)
    assert Send(peer, (LEAVE, me, worker, [GROUPS[0]])) in effects
    assert state.which_groups() == []
    # OTP 29's {discover, Peer, Version} is a discover; unknown messages are refused
    answer = state.receive((DISCOVER, pid(NODES[2], 1), 1))[0]
    assert isinstance(answer, Send) and answer.dest == pid(NODES[2], 1)
    bad: Any
    for bad in [(Atom("x"),), "x", (JOIN, "notapid", GROUPS[0], [])]:
        try:
            state.receive(bad)
        except (TypeError, ValueError):
            continue
        raise AssertionError(f"accepted {bad!r}")


# ---------------------------------------------------------------------- one scope vs a model

LOCAL = [pid(NODES[0], i) for i in range(10, 14)]
PEERS = [pid(NODES[1], 1), pid(NODES[2], 1)]
REMOTE = {peer: [pid(peer.node, i) for i in range(10, 13)] for peer in PEERS}

group_st = st.sampled_from(GROUPS)
peer_st = st.sampled_from(PEERS)
op_st = st.one_of(
    st.tuples(st.just("join"), group_st, st.lists(st.sampled_from(LOCAL), min_size=1, max_size=3)),
    st.tuples(st.just("leave"), group_st, st.lists(st.sampled_from(LOCAL), min_size=1, max_size=3)),
    st.tuples(st.just("crash"), st.sampled_from(LOCAL)),
    st.tuples(st.just("discover"), peer_st),
    st.tuples(st.just("rjoin"), peer_st, group_st, st.integers(0, 2), st.integers(1, 2)),
    st.tuples(st.just("rleave"), peer_st, group_st, st.integers(0, 2)),
    st.tuples(
        st.just("sync"),
        peer_st,
        st.dictionaries(group_st, st.lists(st.integers(0, 2), max_size=3), max_size=3),
    ),
    st.tuples(st.just("peerdown"), peer_st),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(op_st, max_size=40))
def test_one_scope_matches_model(ops: list[tuple[Any, ...]]) -> None:
    me = pid(NODES[0], 1)
    state = ScopeState(SCOPE, me)
    local: Counter[tuple[Any, Pid]] = Counter()
    remote: dict[Pid, Counter[tuple[Any, Pid]]] = {}
    notes: list[Notify] = []
    monitored: set[Pid] = set()
    for op in ops:
        kind = op[0]
        if kind == "join":
            effects = state.join_local(op[1], op[2])
            local.update((op[1], p) for p in op[2])
        elif kind == "leave":
            was = +local
            left, effects = state.leave_local(op[1], op[2])
            for p in op[2]:
                if local[(op[1], p)] > 0:
                    local[(op[1], p)] -= 1
            assert left == (+local != was)
        elif kind == "crash":  # a DOWN comes once, for a monitored pid only
            effects = state.down(op[1]) if op[1] in monitored else []
            monitored.discard(op[1])
            for key in list(local):
                if key[1] == op[1]:
                    del local[key]
        elif kind == "discover":
            effects = state.receive((DISCOVER, op[1]))
            remote.setdefault(op[1], Counter())
            sync = next(e for e in effects if isinstance(e, Send) and e.dest == op[1])
            assert Counter((g, p) for g, ps in sync.message[1][2] for p in ps) == +local
        elif kind == "rjoin":
            _, peer, group, n, times = op
            pids = [REMOTE[peer][n]] * times
            effects = state.receive((JOIN, peer, group, pids[0] if times == 1 else pids))
            if peer in remote:
                remote[peer].update((group, p) for p in pids)
        elif kind == "rleave":
            _, peer, group, n = op
            effects = state.receive((LEAVE, peer, REMOTE[peer][n], [group]))
            if peer in remote and remote[peer][(group, REMOTE[peer][n])] > 0:
                remote[peer][(group, REMOTE[peer][n])] -= 1
        elif kind == "sync":
            _, peer, groups = op
            payload = [(g, [REMOTE[peer][n] for n in ns]) for g, ns in groups.items()]
            effects = state.receive((GEN_CAST, (SYNC, peer, payload)))
            remote[peer] = Counter((g, p) for g, ps in payload for p in ps)
        else:
            effects = state.down(op[1]) if op[1] in monitored else []
            monitored.discard(op[1])
            remote.pop(op[1], None)
        for effect in effects:
            if isinstance(effect, Monitor):
                assert effect.pid not in monitored
                monitored.add(effect.pid)
            elif isinstance(effect, Demonitor):
                monitored.remove(effect.pid)
            elif isinstance(effect, Notify):
                notes.append(effect)
        expected = +(local + sum(remote.values(), Counter()))
        assert table(state) == expected
        assert replay(notes) == expected
        assert Counter((g, p) for g in GROUPS for p in state.local_members(g)) == +local
        assert set(state.which_local_groups()) == {g for g, _ in +local}
        assert set(state.peers()) == set(remote)
        assert monitored == {p for _, p in +local} | set(remote)


# ---------------------------------------------------------------------- three scopes, one network


class Network:
    """Scopes on ``NODES`` with FIFO links; a disconnect drops what is in flight."""

    def __init__(self) -> None:
        self.scopes = {node: ScopeState(SCOPE, pid(node, 1)) for node in NODES}
        self.by_pid = {s.me: s for s in self.scopes.values()}
        self.up: set[frozenset[Atom]] = set()
        self.links: dict[tuple[Atom, Atom], list[Any]] = {}
        self.monitors: dict[Atom, set[Pid]] = {node: set() for node in NODES}
        self.members: dict[Atom, Counter[tuple[Any, Pid]]] = {n: Counter() for n in NODES}

    def apply(self, node: Atom, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                to = effect.dest.node if isinstance(effect.dest, Pid) else effect.dest[1]
                if frozenset((node, to)) in self.up:
                    self.links.setdefault((node, to), []).append(effect.message)
            elif isinstance(effect, Monitor):
                self.monitors[node].add(effect.pid)
            elif isinstance(effect, Demonitor):
                self.monitors[node].discard(effect.pid)

    def connect(self, a: Atom, b: Atom) -> None:
        if a == b or frozenset((a, b)) in self.up:
            return
        self.up.add(frozenset((a, b)))
        self.apply(a, self.scopes[a].nodeup(b))
        self.apply(b, self.scopes[b].nodeup(a))

    def disconnect(self, a: Atom, b: Atom) -> None:
        if frozenset((a, b)) not in self.up:
            return
        self.up.discard(frozenset((a, b)))
        self.links.pop((a, b), None)
        self.links.pop((b, a), None)
        for here, there in ((a, b), (b, a)):
            for watched in [p for p in self.monitors[here] if p.node == there]:
                self.monitors[here].discard(watched)
                self.apply(here, self.scopes[here].down(watched))

    def deliver(self, a: Atom, b: Atom) -> None:
        queue = self.links.get((a, b))
        if queue:
            self.apply(b, self.scopes[b].receive(queue.pop(0)))

    def join(self, node: Atom, group: Any, n: int) -> None:
        self.apply(node, self.scopes[node].join_local(group, [pid(node, n)]))
        self.members[node][(group, pid(node, n))] += 1

    def leave(self, node: Atom, group: Any, n: int) -> None:
        _, effects = self.scopes[node].leave_local(group, [pid(node, n)])
        self.apply(node, effects)
        if self.members[node][(group, pid(node, n))] > 0:
            self.members[node][(group, pid(node, n))] -= 1

    def crash(self, node: Atom, n: int) -> None:
        if pid(node, n) in self.monitors[node]:
            self.monitors[node].discard(pid(node, n))
            self.apply(node, self.scopes[node].down(pid(node, n)))
        for key in [k for k in self.members[node] if k[1] == pid(node, n)]:
            del self.members[node][key]

    def drain(self) -> None:
        for _ in range(10_000):
            busy = [link for link, queue in self.links.items() if queue]
            if not busy:
                return
            self.deliver(*busy[0])
        raise AssertionError("messages never stopped flowing")


node_st = st.sampled_from(NODES)
net_op_st = st.one_of(
    st.tuples(st.just("join"), node_st, group_st, st.integers(2, 4)),
    st.tuples(st.just("leave"), node_st, group_st, st.integers(2, 4)),
    st.tuples(st.just("crash"), node_st, st.integers(2, 4)),
    st.tuples(st.just("connect"), node_st, node_st),
    st.tuples(st.just("disconnect"), node_st, node_st),
    st.tuples(st.just("deliver"), node_st, node_st),
    st.tuples(st.just("deliver"), node_st, node_st),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(net_op_st, max_size=60))
def test_partitions_heal_and_scopes_converge(ops: list[tuple[Any, ...]]) -> None:
    net = Network()
    for op in ops:
        getattr(net, op[0])(*op[1:])
    for a in NODES:
        for b in NODES:
            net.connect(a, b)
    net.drain()
    expected = +sum(net.members.values(), Counter())
    for node, scope in net.scopes.items():
        assert table(scope) == expected, node
        assert Counter(
            (g, p) for g in scope.which_groups() for p in scope.local_members(g)
        ) == +net.members[node]
