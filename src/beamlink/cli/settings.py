"""The CLI's effective settings and where each came from: options, environment, files, defaults.

Every setting (its variables, precedence and accepted range) is defined once in
``beamlink.settings``; this module adds the command-line options in front of the variables and
the rules only the CLI has. ``RELEASE_DISTRIBUTION`` is ``name`` (long names, the default),
``sname`` (short names; ``--sname`` sets it too) or ``none`` (no distribution: ``beamlink start``
runs the app on a local-only node). The cookie falls back to ``~/.erlang.cookie``.
This module only reads: it never starts anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from beamlink import settings as defs
from beamlink.settings import Setting, SettingsError

__all__ = ["Setting", "SettingsError", "describe", "node_settings"]


def _from(setting: defs.EnvSetting[Any], options: Mapping[str, Any], option: str,
          env: Mapping[str, str]) -> Setting | None:
    return setting.lookup(options.get(option), env=env, source=f"--{option.replace('_', '-')}")


def node_settings(options: Mapping[str, Any], env: Mapping[str, str] | None = None) -> dict[str, Setting]:
    """The node-related settings: name, short/long names, cookie, ports, ticktime, config, app.

    ``options`` holds the command-line values (None when not given) under the keys ``name``,
    ``sname``, ``cookie``, ``dist_port``, ``net_ticktime``, ``config``, ``app``, ``hidden``,
    ``listen_host``, ``metrics_port``, ``metrics_host``, ``dashboard_port``, ``dashboard_host``,
    ``ssl_dist_optfile``, ``stall_threshold``, ``workers``, ``processes``, ``health_file``. A host is only set when
    its port is. Raises `SettingsError` for a bad or conflicting value.
    """
    env = os.environ if env is None else env
    out: dict[str, Setting] = {}

    distribution = defs.DISTRIBUTION.require(env=env)
    if options.get("name") and options.get("sname"):
        raise SettingsError("give either --name or --sname, not both")
    if options.get("sname"):
        out["name"] = Setting(options["sname"], "--sname")
        out["distribution"] = Setting("sname", "--sname")
    else:
        name = _from(defs.NODE_NAME, options, "name", env)
        if name is not None:
            out["name"] = name
        out["distribution"] = distribution

    cookie = _from(defs.COOKIE, options, "cookie", env)
    if cookie is None:
        path = Path(env.get("HOME", str(Path.home()))) / ".erlang.cookie"
        cookie = Setting(None, f"file {path}")
    out["cookie"] = cookie

    for key, setting in (("dist_port", defs.DIST_PORT), ("epmd_port", defs.EPMD_PORT),
                         ("net_ticktime", defs.NET_TICKTIME),
                         ("stall_threshold", defs.STALL_THRESHOLD), ("workers", defs.WORKERS),
                         ("processes", defs.PROCESSES), ("config", defs.CONFIG),
                         ("app", defs.APP), ("ssl_dist_optfile", defs.SSL_DIST_OPTFILE),
                         ("listen_host", defs.LISTEN_HOST), ("health_file", defs.HEALTH_FILE)):
        found = _from(setting, options, key, env)
        if found is not None:
            out[key] = found
    out["hidden"] = Setting(bool(options.get("hidden")), "--hidden" if options.get("hidden") else "default")
    metrics_port = _from(defs.METRICS_PORT, options, "metrics_port", env)
    if metrics_port is not None:
        out["metrics_port"] = metrics_port
        out["metrics_host"] = defs.METRICS_HOST.require(
            options.get("metrics_host"), env=env, source="--metrics-host"
        )
    dashboard_port = _from(defs.DASHBOARD_PORT, options, "dashboard_port", env)
    if dashboard_port is not None:
        out["dashboard_port"] = dashboard_port
        out["dashboard_host"] = defs.DASHBOARD_HOST.require(
            options.get("dashboard_host"), env=env, source="--dashboard-host"
        )
    return out


def describe(settings: Mapping[str, Setting]) -> list[str]:
    """Printable ``key = value  (source)`` lines; the cookie's value is never shown."""
    lines = []
    for key, setting in settings.items():
        value = setting.value
        if key == "cookie":
            value = "(from ~/.erlang.cookie)" if value is None else "*" * 8
        lines.append(f"{key} = {value}  ({setting.source})")
    return lines
