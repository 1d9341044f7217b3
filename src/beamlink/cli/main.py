"""Entry point of the ``beamlink`` console script: the click command group and its commands.

Commands mirror a release script: ``start`` runs a node (and an app) in the foreground;
``ping``, ``rpc``, ``nodes``, ``pid``, ``stop``, ``remote`` and ``dashboard`` act on a live node through a hidden,
randomly named control node with the same cookie; ``eval`` runs locally; ``config`` shows the
effective settings; ``demo`` starts a local demo cluster.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from beamlink import __version__, eventloop
from beamlink import settings as defs
from beamlink.cli.settings import SettingsError, describe, node_settings
from beamlink.errors import ConfigurationError
from beamlink.logs import configure

T = TypeVar("T")


def _run(coro: Awaitable[T]) -> T:
    try:
        return eventloop.run(coro)  # type: ignore[arg-type]
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


class EnvOption(click.Option):
    """An option backed by a `beamlink.settings` setting: its help ends with the variables that
    set it when the option is not given (first set wins)."""

    def __init__(self, *args: Any, setting: defs.EnvSetting[Any], extra: str = "",
                 **kwargs: Any) -> None:
        self.setting = setting
        variables = ", ".join(setting.variables)
        kwargs["help"] = f"{kwargs.get('help', '')} Env: {variables}{extra}.".strip()
        super().__init__(*args, **kwargs)


def env_option(*decls: str, setting: defs.EnvSetting[Any], **kwargs: Any) -> Any:
    """``click.option`` for an `EnvOption`."""
    return click.option(*decls, cls=EnvOption, setting=setting, **kwargs)


# The option (by its parameter name) of each setting that has environment variables: every
# command's option of that name must be an EnvOption (tests/cli/test_settings.py checks).
ENV_OPTIONS: dict[str, defs.EnvSetting[Any]] = {
    "name": defs.NODE_NAME, "cookie": defs.COOKIE, "dist_port": defs.DIST_PORT,
    "net_ticktime": defs.NET_TICKTIME, "config": defs.CONFIG, "app": defs.APP,
    "metrics_port": defs.METRICS_PORT, "metrics_host": defs.METRICS_HOST,
    "dashboard_port": defs.DASHBOARD_PORT, "dashboard_host": defs.DASHBOARD_HOST,
    "ssl_dist_optfile": defs.SSL_DIST_OPTFILE, "stall_threshold": defs.STALL_THRESHOLD,
    "workers": defs.WORKERS, "processes": defs.PROCESSES, "listen_host": defs.LISTEN_HOST,
    "health_file": defs.HEALTH_FILE,
}
_COOKIE_FILE = "; else ~/.erlang.cookie"


_TLS_OPTION = env_option(
    "--ssl-dist-optfile", setting=defs.SSL_DIST_OPTFILE, type=click.Path(dir_okay=False),
    help="TLS distribution configured by OTP's ssl_dist_optfile ([{server, [...]}, {client, "
         "[...]}].), the same file erl -proto_dist inet_tls reads.",
)


def _tls(path: str | None) -> Any:
    """The TlsConfig of --ssl-dist-optfile or $BEAMLINK_SSL_DIST_OPTFILE (None: plain TCP)."""
    from beamlink.connection import OptfileError, load_optfile
    from beamlink.settings import SSL_DIST_OPTFILE

    try:
        found = SSL_DIST_OPTFILE.lookup(path, source="--ssl-dist-optfile")
        return None if found is None else load_optfile(found.value)
    except (OptfileError, SettingsError) as exc:
        raise click.UsageError(str(exc)) from None


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
        env_option("--name", setting=defs.NODE_NAME,
                   help="Long node name NAME@HOST (HOST may be 'auto')."),
        click.option("--sname", help="Short node name NAME[@HOST] (same as "
                                     "RELEASE_DISTRIBUTION=sname with a name)."),
        env_option("--cookie", setting=defs.COOKIE, extra=_COOKIE_FILE, callback=_warn_cookie_argv,
                   help="Cookie (visible in ps: prefer the environment or the file)."),
        env_option("--dist-port", setting=defs.DIST_PORT, type=int,
                   help="Fixed distribution port, no EPMD."),
        env_option("--net-ticktime", setting=defs.NET_TICKTIME, type=float,
                   help="Seconds (default 60, like OTP)."),
        click.option("--hidden", is_flag=True, help="Start as a hidden node."),
        env_option("--listen-host", setting=defs.LISTEN_HOST,
                   help="Address the distribution listener (and an embedded EPMD) binds to "
                        "(default every interface)."),
        _TLS_OPTION,
        env_option("--config", setting=defs.CONFIG, type=click.Path(dir_okay=False),
                   help="Cluster topologies (TOML)."),
        env_option("--app", setting=defs.APP, help="package.module:attr to run on the node."),
        env_option("--metrics-port", setting=defs.METRICS_PORT, type=int,
                   help="Serve Prometheus metrics at http://HOST:PORT/metrics."),
        env_option("--metrics-host", setting=defs.METRICS_HOST,
                   help="Address the metrics server listens on (default 127.0.0.1; 0.0.0.0 for "
                        "every interface)."),
        env_option("--dashboard-port", setting=defs.DASHBOARD_PORT, type=int,
                   help="Serve the live cluster dashboard at http://HOST:PORT/ (off by default)."),
        env_option("--dashboard-host", setting=defs.DASHBOARD_HOST,
                   help="Address the dashboard listens on (default 127.0.0.1)."),
        env_option("--stall-threshold", setting=defs.STALL_THRESHOLD, type=float,
                   help="Seconds the event loop may be blocked before a warning names what "
                        "blocked it (default 0.1)."),
        env_option("--workers", setting=defs.WORKERS, type=int,
                   help="Threads synchronous RPC targets and GenServer callbacks run in "
                        "(default 64)."),
        env_option("--processes", setting=defs.PROCESSES, type=int,
                   help="Worker processes for functions marked cpu_bound (default 0: none)."),
        env_option("--health-file", setting=defs.HEALTH_FILE, type=click.Path(dir_okay=False),
                   help="Heartbeat file for container health checks: '<unix time> <node>', "
                        "rewritten every second while the node is up (off by default)."),
    ]):
        fn = option(fn)
    return fn


def _settings(**options: Any) -> dict[str, Any]:
    try:
        return node_settings(options)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


@cli.command()
@_node_options
def start(**options: Any) -> None:
    """Run a node in the foreground until SIGINT/SIGTERM, then leave cleanly and exit 0."""
    from beamlink.cli.runner import run_node

    sys.exit(_run(run_node(_settings(**options))))


_target_options = [
    click.argument("node"),
    env_option("--cookie", setting=defs.COOKIE, extra=_COOKIE_FILE, callback=_warn_cookie_argv,
               help="Cookie of the target (visible in ps: prefer the environment or the file)."),
    click.option("--timeout", type=float, default=15.0, show_default=True, help="Seconds."),
    _TLS_OPTION,
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
def ping(node: str, cookie: str | None, timeout: float, ssl_dist_optfile: str | None) -> None:
    """Ping NODE: print pong (exit 0) or pang (exit 1)."""
    from beamlink.cli.control import ping_target

    ok = _control(ping_target(node, cookie, timeout, _tls(ssl_dist_optfile)))
    click.echo("pong" if ok else "pang")
    sys.exit(0 if ok else 1)


@cli.command()
@_with_target
@click.argument("expr")
def rpc(node: str, cookie: str | None, timeout: float, ssl_dist_optfile: str | None,
        expr: str) -> None:
    """Evaluate the Python EXPR on the live NODE and print the result (exit 1 if it raised)."""
    from beamlink.cli.control import rpc_eval

    ok, output = _control(rpc_eval(node, cookie, timeout, expr, _tls(ssl_dist_optfile)))
    click.echo(output, nl=False, err=not ok)
    sys.exit(0 if ok else 1)


@cli.command()
@_with_target
def nodes(node: str, cookie: str | None, timeout: float, ssl_dist_optfile: str | None) -> None:
    """Print NODE's visible node list, one per line."""
    from beamlink.cli.control import target_nodes

    for name in _control(target_nodes(node, cookie, timeout, _tls(ssl_dist_optfile))):
        click.echo(name)


@cli.command()
@_with_target
def pid(node: str, cookie: str | None, timeout: float, ssl_dist_optfile: str | None) -> None:
    """Print the OS process id of NODE."""
    from beamlink.cli.control import target_pid

    click.echo(_control(target_pid(node, cookie, timeout, _tls(ssl_dist_optfile))))


@cli.command()
@_with_target
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to serve the page on (0 picks a free one).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (the page shows the whole cluster to whoever reaches "
                   "it; keep it on localhost or behind a proxy that authenticates).")
def dashboard(node: str, cookie: str | None, timeout: float, ssl_dist_optfile: str | None,
              port: int, host: str) -> None:
    """Watch NODE's cluster live in the browser until Ctrl-C (read-only; joins as a hidden node)."""
    from beamlink.cli.dashboard import run_dashboard

    _control(run_dashboard(node, cookie, timeout, host, port, _tls(ssl_dist_optfile)))


@cli.command()
@_with_target
def stop(node: str, cookie: str | None, timeout: float, ssl_dist_optfile: str | None) -> None:
    """Stop NODE gracefully (it leaves its cluster and exits 0)."""
    from beamlink.cli.control import stop_target

    _control(stop_target(node, cookie, timeout, _tls(ssl_dist_optfile)))
    click.echo("ok")


@cli.command()
@_with_target
def remote(node: str, cookie: str | None, timeout: float, ssl_dist_optfile: str | None) -> None:
    """Open an interactive Python console whose code runs on the live NODE (Ctrl-D leaves)."""
    from beamlink.cli.console import run_console
    from beamlink.cli.control import ControlError

    try:
        run_console(node, cookie, timeout, _tls(ssl_dist_optfile))
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


@cli.group()
def tls() -> None:
    """TLS distribution helpers (docs/tls.md)."""


@tls.command(name="init")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--nodes", required=True,
              help="Comma-separated node names NAME@HOST the certificates are for.")
@click.option("--days", type=click.IntRange(1, 3650), default=825, show_default=True,
              help="Validity of the certificates.")
def tls_init_command(directory: str, nodes: str, days: int) -> None:
    """Write a CA, node certificates and a ready ssl_dist_optfile into DIRECTORY (for tests and
    trying TLS out; keep ca-key.pem away from the nodes)."""
    from pathlib import Path

    from beamlink.cli.tls import tls_init

    names = [n.strip() for n in nodes.split(",") if n.strip()]
    if not names or any("@" not in n for n in names):
        raise click.UsageError(f"--nodes takes NAME@HOST names separated by commas, got {nodes!r}")
    files = tls_init(Path(directory), names, days=days)
    click.echo(f"CA:       {files.ca}")
    click.echo(f"cluster:  {files.cert} (+ {files.key.name}), for {', '.join(names)}")
    click.echo(f"optfile:  {files.optfile}")
    click.echo(f"use:      beamlink start --ssl-dist-optfile {files.optfile} ...")
    click.echo(f"          erl -proto_dist inet_tls -ssl_dist_optfile {files.optfile} ...")


@cli.command()
def version() -> None:
    """Print the beamlink version."""
    click.echo(f"beamlink {__version__}")


def main() -> None:
    """Console-script entry point."""
    cli()
