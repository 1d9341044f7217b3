"""Skip (or, under BEAMLINK_REQUIRE_ALL=1, fail) tests whose external tool is missing."""

from __future__ import annotations

import os
import shutil

import pytest


def require_all() -> bool:
    """True when CI asked for every tool-dependent test to run."""
    return os.environ.get("BEAMLINK_REQUIRE_ALL", "") not in ("", "0")


def missing(reason: str) -> None:
    """Skip with ``reason``, or fail with it when BEAMLINK_REQUIRE_ALL is set."""
    if require_all():
        pytest.fail(f"required tool missing (BEAMLINK_REQUIRE_ALL=1): {reason}", pytrace=False)
    pytest.skip(reason)


def require_tool(name: str) -> str:
    """Return the path of executable ``name`` or skip/fail the test."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed")
    assert path is not None
    return path
