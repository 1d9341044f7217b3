"""``beamlink start``'s cluster log: what the connection layer already logs is skipped, repeated
identical topology problems are logged once per interval with a count of the suppressed ones."""

from __future__ import annotations

import logging

import pytest

from beamlink.cluster.events import (
    ClusterLog,
    ConnectError,
    ConnectOk,
    DisconnectOk,
    PollFailure,
    TopologyCrashed,
)


def test_repeated_failures_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    log = ClusterLog(interval=3600)
    with caplog.at_level(logging.DEBUG, logger="beamlink.cluster"):
        for _ in range(5):
            log(PollFailure("swarm", 0.1, "tasks.app: NXDOMAIN"))
        log(PollFailure("swarm", 0.1, "tasks.app: timeout"))
        log(PollFailure("other", 0.1, "tasks.app: NXDOMAIN"))
        log(TopologyCrashed("swarm", "KeyError('x')", 1.0))
        log(TopologyCrashed("swarm", "KeyError('x')", 2.0))
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        ("WARNING", "[swarm] discovery failed, keeping the last good answer: tasks.app: NXDOMAIN"),
        ("WARNING", "[swarm] discovery failed, keeping the last good answer: tasks.app: timeout"),
        ("WARNING", "[other] discovery failed, keeping the last good answer: tasks.app: NXDOMAIN"),
        ("ERROR", "[swarm] topology crashed (KeyError('x')), restarting in 1.0 s"),
    ]


def test_suppressed_count_is_reported_after_the_interval(caplog: pytest.LogCaptureFixture) -> None:
    log = ClusterLog(interval=3600)
    with caplog.at_level(logging.WARNING, logger="beamlink.cluster"):
        log(PollFailure("t", 0.1, "down"))
        log(PollFailure("t", 0.1, "down"))
        log(PollFailure("t", 0.1, "down"))
        log.limiter.interval = 0.0
        log(PollFailure("t", 0.1, "down"))
    assert [r.getMessage() for r in caplog.records] == [
        "[t] discovery failed, keeping the last good answer: down",
        "[t] discovery failed, keeping the last good answer: down (2 similar suppressed)",
    ]


def test_connection_events_are_left_to_the_connection_layer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = ClusterLog()
    with caplog.at_level(logging.DEBUG, logger="beamlink.cluster"):
        log(ConnectOk("t", "a@h", 0.01))
        log(ConnectError("t", "a@h", 0.01, "connect refused"))
        log(DisconnectOk("t", "a@h", 0.01))
    assert caplog.records == []
