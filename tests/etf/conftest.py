"""Runs every test of ``tests/etf`` twice: with the pure-Python decoder and with the compiled
accelerator. The ``codec`` fixture (autouse) rebinds the codec functions a test module imported
from ``beamlink.etf`` to the chosen implementation, and empties the shared decode memo (the last term) so no
result decoded by one implementation is served to a test of the other."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from beamlink.etf import decoder, encoder
from tests.support.require import missing

CODEC_FUNCTIONS = ("decode", "decode_from", "decode_body_from", "decode_body_exact", "encode")


pure = SimpleNamespace(
    encode=encoder.encode, **{name: getattr(decoder, name) for name in CODEC_FUNCTIONS[:4]}
)


def implementation(name: str) -> Any:
    """A namespace with the codec functions of implementation ``name`` (skips if not built)."""
    if name == "pure":
        return pure
    try:
        return importlib.import_module("beamlink.etf._accelerated")
    except ImportError as exc:
        missing(f"the C accelerator beamlink.etf._speedups is not built ({exc})")
        raise


@pytest.fixture(autouse=True, params=["pure", "accelerated"])
def codec(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    impl = implementation(request.param)
    for name in CODEC_FUNCTIONS:
        if hasattr(request.module, name):
            monkeypatch.setattr(request.module, name, getattr(impl, name))
    monkeypatch.setattr(decoder, "_last_exact", (b"", decoder._SEEN_ONCE))
    yield request.param
