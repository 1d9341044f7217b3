"""Tests of the External Term Format codec (beamlink.etf)."""
