"""Fixtures of the robustness suite: a real dnsmasq server (for the churn test)."""

from __future__ import annotations

from tests.support.dnsmasq import dnsmasq_factory

__all__ = ["dnsmasq_factory"]
