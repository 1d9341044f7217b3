"""cluster_demo: the example app shipped in the beamlink Docker image (see docs/deploy.md)."""
