"""Rate-limited logging and the JSON log format."""

from __future__ import annotations

import json
import logging

import pytest

from beamlink.logs import JsonFormatter, RateLimiter, configure


def test_rate_limiter_lets_one_line_per_key_through(caplog: pytest.LogCaptureFixture) -> None:
    limiter = RateLimiter(interval=3600)
    log = logging.getLogger("beamlink.test")
    with caplog.at_level(logging.WARNING):
        assert limiter.log(log, logging.WARNING, "a", "refused %s", "x")
        for _ in range(5):
            assert not limiter.log(log, logging.WARNING, "a", "refused %s", "x")
        assert limiter.log(log, logging.WARNING, "b", "other")
    assert [r.getMessage() for r in caplog.records] == ["refused x", "other"]


def test_rate_limiter_reports_suppressed_count_after_interval(caplog: pytest.LogCaptureFixture) -> None:
    limiter = RateLimiter(interval=0.0)
    limiter._last["k"] = (float("-inf"), 7)
    with caplog.at_level(logging.INFO):
        limiter.log(logging.getLogger("t"), logging.INFO, "k", "again")
    assert caplog.records[0].getMessage() == "again (7 similar suppressed)"


def test_rate_limiter_memory_is_bounded() -> None:
    limiter = RateLimiter(interval=3600, max_keys=10)
    for i in range(1000):
        limiter.allow(i)
    assert len(limiter._last) == 10


def test_json_formatter_emits_one_object_with_extra_fields() -> None:
    record = logging.makeLogRecord(
        {"name": "beamlink.node", "levelno": logging.INFO, "levelname": "INFO",
         "msg": "nodeup %s", "args": ("a@h",), "node": "a@h"}
    )
    out = json.loads(JsonFormatter().format(record))
    assert out["message"] == "nodeup a@h"
    assert out["level"] == "info"
    assert out["node"] == "a@h"


def test_configure_rejects_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown log format"):
        configure(fmt="xml")
