"""``beamlink start``: run a node, its cluster topologies and an app until told to stop.

Lifecycle: resolve the name (``NAME@auto`` becomes the address peers reach this host at), start
the node, start the topologies, start the app; then wait for SIGINT/SIGTERM, ``beamlink stop``,
the app's end or its crash. Shutdown is bounded (``SHUTDOWN_TIMEOUT``): stop the app, leave the
cluster (disconnect from everyone so peers drop this node at once), stop the node (connections
closed, EPMD unregistered).

Exit status: 0 after a requested stop or when the app's entry point returned; 1 when the app
crashed (its traceback is logged) or the node could not start (the reason is logged).

With ``--metrics-port`` (or ``BEAMLINK_METRICS_PORT``) the node serves Prometheus metrics at
``http://HOST:PORT/metrics`` from prometheus_client's global registry: the node's collector, the
cluster topologies' metrics, the process/platform/GC collectors, and whatever the app registers.
The server starts once the topologies have made their first round, waiting at most
``FIRST_ROUND_TIMEOUT`` (so a new replica joins its peers first; the cluster events before it are
counted all the same), and stops after the node.

With ``--health-file`` (or ``BEAMLINK_HEALTH_FILE``) the node keeps a heartbeat file fresh
while it is up and registered (``beamlink.cli.health``), for container health checks.

With ``--dashboard-port`` (or ``BEAMLINK_DASHBOARD_PORT``) the node also serves the live cluster
dashboard (``beamlink.web.dashboard``, on ``--dashboard-host``, default 127.0.0.1). It watches
through a hidden, client-only node started in this process just before the node itself (so that
``current_node()`` outside a process still means the node), which joins the node once it is up.

``RELEASE_DISTRIBUTION=none`` runs the app on a local-only node named ``nonode@nohost``: processes,
GenServers and local calls work, but it neither listens nor registers with EPMD and no topology
runs, so no other node (nor ``beamlink stop``) can reach it; SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
import os
import signal
import sys
from collections.abc import Mapping
from typing import Any

from beamlink.cli.agent import register_stop_event
from beamlink.cli.settings import Setting
from beamlink.errors import BeamlinkError, NodeError

log = logging.getLogger(__name__)
SHUTDOWN_TIMEOUT = 10.0
LOCAL_ONLY_NAME = "nonode@nohost"
AUTO_HOST = "auto"
# How long ``@auto`` waits for DNS topologies to list this node (a new task is not in DNS yet).
AUTO_DNS_TIMEOUT = 30.0
# How long the metrics server (and so the app) waits for the topologies' first discovery round.
FIRST_ROUND_TIMEOUT = 1.0


class StartError(NodeError, RuntimeError):
    """The node or the app cannot start: bad ``--app``, config, name or address."""


def load_app(spec: str) -> Any:
    """Import ``package.module:attr`` and return the attribute.

    Like ``python -m``, the current directory comes first on ``sys.path``, so an app package in
    the directory ``beamlink start`` runs from is found without ``PYTHONPATH``.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise StartError(f"--app must look like package.module:attr, got {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StartError(
            f"cannot import {module_name!r} for --app: {exc} (looked in the current directory "
            f"{cwd} and on sys.path: start from the directory that holds the package, or add "
            "its parent to PYTHONPATH)"
        ) from exc
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise StartError(f"{module_name!r} has no attribute {attr!r}") from None
    return target


class HostedApp:
    """The user's code on the node: an async entry point ``fn(node)`` or an object with
    ``start(node)``/``stop()`` hooks (sync or async); a class is instantiated without arguments.

    An entry point runs as a task for the app's lifetime: when it returns the node stops (exit 0),
    when it raises the node stops with status 1; stopping the node cancels it. ``start(node)``
    must return once the app runs; ``stop()`` is called on shutdown.
    """

    def __init__(self, spec: str, target: Any) -> None:
        self.spec = spec
        if inspect.isclass(target):
            target = target()
        self.target = target
        self.task: asyncio.Task[Any] | None = None
        if not (inspect.iscoroutinefunction(target) or callable(getattr(target, "start", None))):
            raise StartError(
                f"--app {spec}: {target!r} is neither an async function nor an object "
                "with start(node)"
            )

    async def start(self, node: Any) -> None:
        """Start the entry point task or call the ``start`` hook."""
        if inspect.iscoroutinefunction(self.target):
            self.task = asyncio.create_task(self.target(node), name=f"beamlink-app {self.spec}")
        else:
            result = self.target.start(node)
            if inspect.isawaitable(result):
                await result

    async def stop(self) -> None:
        """Cancel the entry point task or call the ``stop`` hook (if any)."""
        if self.task is not None:
            if not self.task.done():
                self.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.task
        elif callable(getattr(self.target, "stop", None)):
            result = self.target.stop()
            if inspect.isawaitable(result):
                await result


def node_name(settings: Mapping[str, Setting]) -> str:
    """The node name to start with, before ``@auto`` is resolved.

    A bare ``NAME`` is ``NAME@<fully qualified host name>`` with long names (like ``erl -name``)
    and ``NAME@<host>`` with short names; ``RELEASE_DISTRIBUTION=none`` is ``nonode@nohost``.
    """
    from beamlink.distribution.names import local_host

    distribution = settings["distribution"].value
    if distribution == "none":
        return LOCAL_ONLY_NAME
    if "name" not in settings:
        raise StartError("no node name: give --name/--sname or set BEAMLINK_NODE or RELEASE_NODE")
    name = str(settings["name"].value)
    if "@" not in name:
        return f"{name}@{local_host(long=distribution == 'name')}"
    if distribution == "sname" and name.endswith(f"@{AUTO_HOST}"):
        raise StartError(f"{name}: @{AUTO_HOST} picks an address, which needs long names")
    return name


async def resolve_auto(name: str, config: Any) -> str:
    """Replace a ``@auto`` host part with the address the cluster reaches this host at.

    Uses the clustering layer's own-address logic (``BEAMLINK_HOST``/``POD_IP``, else the local
    address routed toward the configured peers). Only DNS topologies can list this node later,
    so only they are waited for; static peer lists are looked at once.
    """
    base, _, host = name.rpartition("@")
    if host != AUTO_HOST:
        return name
    from beamlink.cluster.address import AddressError, resolve_own_host

    topologies = config.topologies.values() if config is not None else ()
    dns = any(t.dns_listing() is not None for t in topologies)
    try:
        address = await resolve_own_host(config, timeout=AUTO_DNS_TIMEOUT if dns else 0.0)
    except AddressError as exc:
        raise StartError(f"{name}: {exc}") from None
    log.info("%s: this host is %s", name, address)
    return f"{base}@{address}"


async def _start_metrics(node: Any, settings: Mapping[str, Setting], cluster: bool) -> Any:
    # prometheus_client and the metrics modules are imported in a thread: on the event loop the
    # import (0.05-0.2 s) would hold up the handshakes of peers connecting meanwhile. The
    # cluster's metrics only with a cluster.
    await asyncio.to_thread(importlib.import_module, "beamlink.web.metrics")
    if cluster:
        await asyncio.to_thread(importlib.import_module, "beamlink.cluster.metrics")
    from beamlink.web.metrics import METRICS_PATH, serve_metrics

    host = str(settings["metrics_host"].value)
    port = int(settings["metrics_port"].value)
    try:
        server = serve_metrics(node, host=host, port=port)
    except OSError as exc:
        raise StartError(f"metrics server on {host}:{port}: {exc}") from None
    where = f"[{host}]" if ":" in host else host
    log.info("metrics at http://%s:%d%s", where, server.port, METRICS_PATH)
    return server


class _Dashboard:
    """The dashboard of ``beamlink start``: its hidden observing node, then its server."""

    def __init__(self, settings: Mapping[str, Setting]) -> None:
        self.host = str(settings["dashboard_host"].value)
        self.port = int(settings["dashboard_port"].value)
        self.cookie = settings["cookie"].value
        self.observer: Any = None
        self.server: Any = None

    async def prepare(self, name: str, tls: Any = None) -> None:
        """Start the observing node (before the node ``name`` starts), with the node's TLS."""
        from beamlink.cli.control import ControlError, start_control_node

        try:
            self.observer = await start_control_node(name, self.cookie, tls)
        except ControlError as exc:
            raise StartError(f"dashboard: {exc}") from None

    async def serve(self, node: Any) -> None:
        """Join ``node`` and serve the page (its web stack imported in a thread, off the loop)."""
        await asyncio.to_thread(importlib.import_module, "beamlink.web.dashboard")
        from beamlink.web.dashboard import DashboardServer

        if not await self.observer.connect(str(node.name)):
            raise StartError(f"dashboard: its observing node cannot reach {node.name}")
        try:
            self.server = await DashboardServer.start(self.observer, [str(node.name)],
                                                      host=self.host, port=self.port)
        except OSError as exc:
            raise StartError(f"dashboard on {self.host}:{self.port}: {exc}") from None
        log.info("dashboard at %s", self.server.url)

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()
        if self.observer is not None:
            await self.observer.stop()


def _health_file(settings: Mapping[str, Setting]) -> Any:
    """The node's `HealthFile` (removed now: the node is not up yet), or None."""
    if "health_file" not in settings:
        return None
    from beamlink.cli.health import HealthFile

    health = HealthFile(str(settings["health_file"].value))
    try:
        health.clear()
    except OSError as exc:
        raise StartError(f"health file {health.path}: {exc}") from None
    return health


def _load_config(settings: Mapping[str, Setting]) -> Any:
    if "config" not in settings:
        return None
    from beamlink.cluster.config import ConfigError
    from beamlink.cluster.schema import load_config

    try:
        return load_config(settings["config"].value)
    except ConfigError as exc:
        raise StartError(f"config from {settings['config'].source}: {exc}") from None


async def run_node(settings: Mapping[str, Setting]) -> int:
    """Run until stopped; returns the process exit status."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        return await _run(settings, stop)
    except StartError as exc:
        log.error("cannot start: %s", exc)
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _run(settings: Mapping[str, Setting], stop: asyncio.Event) -> int:
    from beamlink.node import Node

    health = _health_file(settings)
    config = _load_config(settings)
    app = None
    if "app" in settings:
        spec = str(settings["app"].value)
        app = HostedApp(spec, load_app(spec))
    local_only = settings["distribution"].value == "none"
    if local_only and config is not None:
        log.warning("RELEASE_DISTRIBUTION=none: the topologies of %s do not run",
                    settings["config"].value)
        config = None
    name = await resolve_auto(node_name(settings), config)
    dist_port = settings.get("dist_port")
    optfile = settings.get("ssl_dist_optfile")
    tls = None
    if optfile is not None:
        from beamlink.connection import load_optfile

        try:
            tls = load_optfile(str(optfile.value))
        except BeamlinkError as exc:
            raise StartError(str(exc)) from None
    dashboard = None
    if "dashboard_port" in settings:
        if local_only:
            raise StartError("RELEASE_DISTRIBUTION=none: a dashboard needs distribution")
        dashboard = _Dashboard(settings)
        await dashboard.prepare(name, tls)
    try:
        node = await Node.start(
            name,
            settings["cookie"].value,
            hidden=local_only or bool(settings["hidden"].value),
            net_ticktime=float(settings["net_ticktime"].value),
            stall_threshold=float(settings["stall_threshold"].value),
            workers=int(settings["workers"].value),
            processes=int(settings["processes"].value),
            dist_port=None if dist_port is None or local_only else int(dist_port.value),
            epmd_port=int(settings["epmd_port"].value),
            listen_host=str(settings["listen_host"].value) if "listen_host" in settings else None,
            listen=not local_only,
            tls=tls,
        )
    except (BeamlinkError, OSError) as exc:
        if dashboard is not None:
            await dashboard.close()
        raise StartError(f"node {name}: {exc}") from None
    withdraw_stop = register_stop_event(str(node.name), stop)
    heartbeat = None
    cluster = None
    metrics = None
    forget_cluster = None
    status = 0
    try:
        if health is not None:  # first beat at once: a container turns healthy on it
            try:
                health.beat(str(node.name))
            except OSError as exc:
                raise StartError(f"health file {health.path}: {exc} (give a writable path with "
                                 "--health-file or BEAMLINK_HEALTH_FILE)") from None
            heartbeat = asyncio.create_task(health.run(node), name="beamlink-health-file")
        if dashboard is not None:
            await dashboard.serve(node)
        early: list[Any] = []  # cluster events before the metrics exist
        if config is not None:
            from beamlink.cluster.topology import Cluster
            from beamlink.web.probe import record_cluster

            cluster = Cluster(node, config)
            forget_cluster = record_cluster(node, cluster)
            stop_buffering = cluster.subscribe(early.append)
            await cluster.start()
            if "metrics_port" in settings:
                await _first_rounds(cluster)
        if "metrics_port" in settings:
            metrics = await _start_metrics(node, settings, cluster is not None)
            if cluster is not None:
                from beamlink.cluster.metrics import ClusterMetrics

                counted = ClusterMetrics()
                for event in early:
                    counted(event)
                cluster.subscribe(counted)
        if cluster is not None:
            stop_buffering()
        log.info("node %s running (cookie from %s%s%s)", node.name, settings["cookie"].source,
                 f", topologies {', '.join(config.topologies)}" if config is not None else "",
                 f", app {app.spec}" if app is not None else "")
        status = await _serve(app, node, stop)
    finally:
        withdraw_stop()
        if heartbeat is not None:
            heartbeat.cancel()
        if health is not None:
            with contextlib.suppress(OSError):
                health.clear()
        log.info("node %s stopping", node.name)
        try:
            if dashboard is not None:
                await asyncio.wait_for(dashboard.close(), SHUTDOWN_TIMEOUT)
            await asyncio.wait_for(_shutdown(app, cluster, node), SHUTDOWN_TIMEOUT)
        except asyncio.TimeoutError:
            log.error("shutdown took longer than %.0f s; exiting anyway", SHUTDOWN_TIMEOUT)
        if metrics is not None:
            metrics.close()
        if forget_cluster is not None:
            forget_cluster()
    return status


async def _first_rounds(cluster: Any) -> None:
    """Wait (at most ``FIRST_ROUND_TIMEOUT``) until every topology has polled and connected once.

    The metrics server starts after that: importing prometheus_client and starting its thread
    takes about 0.1 s of CPU, which a new replica should not spend before joining its peers.
    """
    rounds = [topology.wait_polls(1) for topology in cluster.topologies.values()]
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.gather(*rounds), FIRST_ROUND_TIMEOUT)


async def _serve(app: HostedApp | None, node: Any, stop: asyncio.Event) -> int:
    """Start the app and wait for a stop request or the app's end; the exit status."""
    if app is not None:
        try:
            await app.start(node)
        except Exception:
            log.exception("app %s failed to start; stopping the node", app.spec)
            return 1
    stopping = asyncio.create_task(stop.wait())
    waiters: list[asyncio.Task[Any]] = [stopping]
    if app is not None and app.task is not None:
        waiters.append(app.task)
    try:
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if app is None or app.task not in done or stopping in done:
        return 0
    exc = app.task.exception() if not app.task.cancelled() else None
    if exc is not None:
        log.error("app %s crashed; stopping the node", app.spec, exc_info=exc)
        return 1
    log.info("app %s returned; stopping the node", app.spec)
    return 0


async def _shutdown(app: HostedApp | None, cluster: Any, node: Any) -> None:
    if app is not None:
        try:
            await app.stop()
        except Exception:
            log.exception("app %s: stop failed", app.spec)
    if cluster is not None:
        await cluster.stop(leave=True)
    else:
        await asyncio.gather(*(node.disconnect(n) for n in list(node.nodes())),
                             return_exceptions=True)
    await node.stop()
