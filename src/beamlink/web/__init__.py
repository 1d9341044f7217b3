"""HTTP endpoints of a running node, outside the node runtime: Prometheus ``/metrics`` and the
live cluster dashboard.

Layer 5 (beside ``cluster/``): it reads the node through ``beamlink.node.metrics`` and never
imports ``cli``; the CLI composes it with the node (``beamlink start --metrics-port``).
"""
