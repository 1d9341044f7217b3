"""Logging helpers shared by every layer: rate-limited warnings and the CLI's text/JSON formats.

It imports nothing from beamlink, so any layer may use it. Loggers are the stdlib's, one per module
(``logging.getLogger(__name__)``); this file never configures handlers except in
:func:`configure`, which only the CLI calls.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Hashable

__all__ = ["JsonFormatter", "RateLimiter", "configure"]


class RateLimiter:
    """Lets one log line per key through every ``interval`` seconds and counts the rest.

    ``log(logger, level, key, msg, *args)`` logs at once for a key not seen within ``interval``,
    and appends ``" (N similar suppressed)"`` when earlier lines for that key were dropped.
    Memory is bounded by ``max_keys`` (oldest keys are forgotten first).
    """

    def __init__(self, interval: float = 10.0, max_keys: int = 1024) -> None:
        self.interval = interval
        self.max_keys = max_keys
        self._last: dict[Hashable, tuple[float, int]] = {}

    def allow(self, key: Hashable) -> tuple[bool, int]:
        """Whether a line for ``key`` may be logged now, and how many were suppressed before it."""
        now = time.monotonic()
        seen = self._last.get(key)
        if seen is not None and now - seen[0] < self.interval:
            self._last[key] = (seen[0], seen[1] + 1)
            return False, 0
        suppressed = seen[1] if seen is not None else 0
        self._last.pop(key, None)
        if len(self._last) >= self.max_keys:
            del self._last[next(iter(self._last))]
        self._last[key] = (now, 0)
        return True, suppressed

    def log(
        self, logger: logging.Logger, level: int, key: Hashable, msg: str, *args: object
    ) -> bool:
        """Log ``msg % args`` unless a line for ``key`` was logged within the interval."""
        ok, suppressed = self.allow(key)
        if ok:
            if suppressed:
                msg += f" ({suppressed} similar suppressed)"
            logger.log(level, msg, *args)
        return ok


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any ``extra`` fields."""

    _STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        import json  # here, not at the top: a node logging text never loads it

        out: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure(level: str = "info", fmt: str = "text") -> None:
    """Install one stderr handler on the root logger with the text or JSON format."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    elif fmt == "text":
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        raise ValueError(f"unknown log format {fmt!r} (expected 'text' or 'json')")
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
