"""The ``beamlink`` command line: release-script style commands for nodes and clusters."""
