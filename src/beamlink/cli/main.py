"""Entry point of the ``beamlink`` console script: the click command group and its commands."""

from __future__ import annotations

import click

from beamlink import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """beamlink: run Python nodes in Erlang/Elixir clusters."""


@cli.command()
def version() -> None:
    """Print the beamlink version."""
    click.echo(f"beamlink {__version__}")


def main() -> None:
    """Console-script entry point."""
    cli()
