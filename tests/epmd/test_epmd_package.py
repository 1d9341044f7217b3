"""The ``beamlink.epmd`` package: every exported name resolves, and the wire protocol alone (what
the image's health check uses over a blocking socket) does not import asyncio."""

from __future__ import annotations

import subprocess
import sys

import pytest

import beamlink.epmd


def test_every_exported_name_resolves_and_nothing_else_does() -> None:
    assert sorted(beamlink.epmd.__all__) == sorted(beamlink.epmd._HOME_OF)
    for name in beamlink.epmd.__all__:
        assert getattr(beamlink.epmd, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        beamlink.epmd.nothing  # noqa: B018


def test_the_protocol_alone_does_not_import_asyncio() -> None:
    probe = "import sys, beamlink.epmd.protocol; print('asyncio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "False"
