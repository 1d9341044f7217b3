"""Shared helpers for the test suites: tool requirements and real-peer fixtures."""
