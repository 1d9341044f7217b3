"""Entry point of the ``beamlink`` console script: the click command group and its commands.

Commands mirror a release script: ``start`` runs a node (and an app) in the foreground;
``ping``, ``rpc``, ``nodes``, ``pid``, ``stop`` and ``remote`` act on a live node through a hidden,
randomly named control node with the same cookie; ``eval`` runs locally; ``config`` shows the
effective settings; ``demo`` starts a local demo cluster.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from beamlink import __version__
from beamlink.cli.settings import SettingsError, describe, node_settings
from beamlink.errors import ConfigurationError
from beamlink.logs import configure

T = TypeVar("T")


def _run(coro: Awaitable[T]) -> T:
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except KeyboardInterrupt:
        raise SystemExit(130) from None


class _Group(click.Group):
    """The command group; a bad setting met by any command ends it with a one-line error (exit 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigurationError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-level", default=None,
              type=click.Choice(["debug", "info", "warning", "error"]),
              help="Log level (default: info for start, warning for the others).")
@click.option("--log-format", default="text", show_default=True,
              type=click.Choice(["text", "json"]), help="Log line format (json for log shippers).")
@click.pass_context
def cli(ctx: click.Context, log_level: str | None, log_format: str) -> None:
    """beamlink: run Python nodes in Erlang/Elixir clusters."""
    if log_level is None:
        log_level = "info" if ctx.invoked_subcommand == "start" else "warning"
    configure(log_level, log_format)


COOKIE_ARGV_WARNING = (
    "beamlink: warning: --cookie shows the cookie to every local user (ps, /proc/PID/cmdline); "
    "set BEAMLINK_COOKIE in the environment or keep it in ~/.erlang.cookie (mode 0400) instead"
)


def _warn_cookie_argv(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--cookie`` callback: warn (stderr) that a cookie on the command line is public."""
    if value is not None:
        click.echo(COOKIE_ARGV_WARNING, err=True)
    return value


def _node_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--name", help="Long node name NAME@HOST (HOST may be 'auto'). "
                                    "Env: BEAMLINK_NODE, RELEASE_NODE."),
        click.option("--sname", help="Short node name NAME[@HOST]."),
        click.option("--cookie", callback=_warn_cookie_argv,
                     help="Cookie (visible in ps: prefer the env or the file). Env: "
                          "BEAMLINK_COOKIE, RELEASE_COOKIE; else ~/.erlang.cookie."),
        click.option("--dist-port", type=int, help="Fixed distribution port, no EPMD "
                                                   "(env ERL_DIST_PORT)."),
        click.option("--net-ticktime", type=float, help="Seconds (default 60, like OTP)."),
        click.option("--hidden", is_flag=True, help="Start as a hidden node."),
        click.option("--listen-host", help="Address the distribution listener (and an embedded "
                                           "EPMD) binds to (default every interface). "
                                           "Env: BEAMLINK_LISTEN_HOST."),
    ]):
        fn = option(fn)
    return fn


def _metrics_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--metrics-host", help="Address the metrics server listens on (default "
                                             "127.0.0.1; 0.0.0.0 for every interface). "
                                             "Env: BEAMLINK_METRICS_HOST.")(fn)
    return click.option("--metrics-port", type=int, help="Serve Prometheus metrics at "
                                                         "http://HOST:PORT/metrics. "
                                                         "Env: BEAMLINK_METRICS_PORT.")(fn)


def _settings(**options: Any) -> dict[str, Any]:
    try:
        return node_settings(options)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


@cli.command()
@_node_options
@click.option("--config", type=click.Path(dir_okay=False), help="Cluster topologies (TOML). "
                                                               "Env: BEAMLINK_CONFIG.")
@click.option("--app", help="package.module:attr to run on the node. Env: BEAMLINK_APP.")
@_metrics_options
def start(**options: Any) -> None:
    """Run a node in the foreground until SIGINT/SIGTERM, then leave cleanly and exit 0."""
    from beamlink.cli.runner import run_node

    sys.exit(_run(run_node(_settings(**options))))


_target_options = [
    click.argument("node"),
    click.option("--cookie", callback=_warn_cookie_argv,
                 help="Cookie of the target (visible in ps: prefer env BEAMLINK_COOKIE, "
                      "RELEASE_COOKIE, or ~/.erlang.cookie)."),
    click.option("--timeout", type=float, default=15.0, show_default=True, help="Seconds."),
]


def _with_target(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_target_options):
        fn = option(fn)
    return fn


def _control(coro: Awaitable[T]) -> T:
    """Run a control command; a ControlError ends the process with its message and status 1."""
    from beamlink.cli.control import ControlError

    try:
        return _run(coro)
    except ControlError as exc:
        click.echo(f"beamlink: {exc}", err=True)
        sys.exit(1)


@cli.command()
@_with_target
def ping(node: str, cookie: str | None, timeout: float) -> None:
    """Ping NODE: print pong (exit 0) or pang (exit 1)."""
    from beamlink.cli.control import ping_target

    ok = _control(ping_target(node, cookie, timeout))
    click.echo("pong" if ok else "pang")
    sys.exit(0 if ok else 1)


@cli.command()
@_with_target
@click.argument("expr")
def rpc(node: str, cookie: str | None, timeout: float, expr: str) -> None:
    """Evaluate the Python EXPR on the live NODE and print the result (exit 1 if it raised)."""
    from beamlink.cli.control import rpc_eval

    ok, output = _control(rpc_eval(node, cookie, timeout, expr))
    click.echo(output, nl=False, err=not ok)
    sys.exit(0 if ok else 1)


@cli.command()
@_with_target
def nodes(node: str, cookie: str | None, timeout: float) -> None:
    """Print NODE's visible node list, one per line."""
    from beamlink.cli.control import target_nodes

    for name in _control(target_nodes(node, cookie, timeout)):
        click.echo(name)


@cli.command()
@_with_target
def pid(node: str, cookie: str | None, timeout: float) -> None:
    """Print the OS process id of NODE."""
    from beamlink.cli.control import target_pid

    click.echo(_control(target_pid(node, cookie, timeout)))


@cli.command()
@_with_target
def stop(node: str, cookie: str | None, timeout: float) -> None:
    """Stop NODE gracefully (it leaves its cluster and exits 0)."""
    from beamlink.cli.control import stop_target

    _control(stop_target(node, cookie, timeout))
    click.echo("ok")


@cli.command()
@_with_target
def remote(node: str, cookie: str | None, timeout: float) -> None:
    """Open an interactive Python console whose code runs on the live NODE (Ctrl-D leaves)."""
    from beamlink.cli.console import run_console
    from beamlink.cli.control import ControlError

    try:
        run_console(node, cookie, timeout)
    except ControlError as exc:
        click.echo(f"beamlink: {exc}", err=True)
        sys.exit(1)


@cli.command(name="eval")
@click.argument("expr")
def eval_(expr: str) -> None:
    """Evaluate the Python EXPR locally with beamlink imported (no distribution)."""
    from beamlink.cli.agent import run_local

    ok, output = _run(run_local(expr))
    click.echo(output, nl=False, err=not ok)
    sys.exit(0 if ok else 1)


@cli.command()
@_node_options
@click.option("--config", type=click.Path(dir_okay=False), help="Cluster topologies (TOML).")
@click.option("--app", help="package.module:attr.")
@_metrics_options
def config(**options: Any) -> None:
    """Print the effective configuration and where each value came from."""
    settings = _settings(**options)
    for line in describe(settings):
        click.echo(line)
    path = settings.get("config")
    if path is not None:
        from beamlink.cluster.config import ConfigError
        from beamlink.cluster.schema import load_config

        try:
            cluster = load_config(path.value)
        except ConfigError as exc:
            raise click.UsageError(str(exc)) from None
        for name, topology in cluster.topologies.items():
            click.echo(f"topology {name} = {topology.strategy}  (file {path.value})")


@cli.command()
@click.option("--nodes", "count", type=click.IntRange(2, 9), default=4, show_default=True,
              help="How many Python nodes.")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds "
                                                           "(default: until Ctrl-C).")
@click.option("--no-erlang", is_flag=True, help="Do not join a real erl node even if installed.")
def demo(count: int, duration: float | None, no_erlang: bool) -> None:
    """Start a demo cluster on 127.0.0.x with the embedded EPMD and show each node's node list."""
    from beamlink.cli.demo import run_demo

    sys.exit(_run(run_demo(count, duration, with_erlang=not no_erlang)))


@cli.command()
def version() -> None:
    """Print the beamlink version."""
    click.echo(f"beamlink {__version__}")


def main() -> None:
    """Console-script entry point."""
    cli()
