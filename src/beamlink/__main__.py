"""``python -m beamlink``: the same as the ``beamlink`` command."""

from beamlink.cli.main import main

main()
