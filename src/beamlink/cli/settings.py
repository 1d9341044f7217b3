"""The CLI's effective settings and where each came from: options, environment, files, defaults.

Precedence, like mix releases: a command-line option, then ``BEAMLINK_*`` variables, then mix
release's ``RELEASE_*`` variables, then defaults (the cookie falls back to ``~/.erlang.cookie``).
``RELEASE_DISTRIBUTION`` is ``name`` (long names, the default), ``sname`` (short names; ``--sname``
sets it too) or ``none`` (no distribution: ``beamlink start`` runs the app on a local-only node).
This module only reads: it never starts anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_NET_TICKTIME = 60.0
DEFAULT_METRICS_HOST = "0.0.0.0"
DISTRIBUTIONS = ("name", "sname", "none")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it and its source."""


@dataclass(frozen=True)
class Setting:
    """One effective value and where it came from (``"--name"``, ``"env BEAMLINK_NODE"``...)."""

    value: Any
    source: str


def _first(options: Mapping[str, Any], env: Mapping[str, str], option: str,
           variables: tuple[str, ...]) -> Setting | None:
    if options.get(option) not in (None, ""):
        return Setting(options[option], f"--{option.replace('_', '-')}")
    for var in variables:
        if env.get(var):
            return Setting(env[var], f"env {var}")
    return None


def _number(setting: Setting | None, kind: type, name: str) -> Setting | None:
    if setting is None:
        return None
    try:
        return Setting(kind(setting.value), setting.source)
    except (TypeError, ValueError):
        raise SettingsError(
            f"{name} from {setting.source} must be a {kind.__name__}, got {setting.value!r}"
        ) from None


def node_settings(options: Mapping[str, Any], env: Mapping[str, str] | None = None) -> dict[str, Setting]:
    """The node-related settings: name, short/long names, cookie, ports, ticktime, config, app.

    ``options`` holds the command-line values (None when not given) under the keys ``name``,
    ``sname``, ``cookie``, ``dist_port``, ``net_ticktime``, ``config``, ``app``, ``hidden``,
    ``metrics_port``, ``metrics_host``. ``metrics_host`` is only set when ``metrics_port`` is.
    """
    env = os.environ if env is None else env
    out: dict[str, Setting] = {}

    distribution = env.get("RELEASE_DISTRIBUTION", "name")
    if distribution not in DISTRIBUTIONS:
        raise SettingsError(
            f"RELEASE_DISTRIBUTION must be name, sname or none, got {distribution!r}"
        )
    if options.get("name") and options.get("sname"):
        raise SettingsError("give either --name or --sname, not both")
    if options.get("sname"):
        out["name"] = Setting(options["sname"], "--sname")
        out["distribution"] = Setting("sname", "--sname")
    else:
        name = _first(options, env, "name", ("BEAMLINK_NODE", "RELEASE_NODE"))
        if name is not None:
            out["name"] = name
        source = "env RELEASE_DISTRIBUTION" if "RELEASE_DISTRIBUTION" in env else "default"
        out["distribution"] = Setting(distribution, source)

    cookie = _first(options, env, "cookie", ("BEAMLINK_COOKIE", "RELEASE_COOKIE"))
    if cookie is None:
        path = Path(env.get("HOME", str(Path.home()))) / ".erlang.cookie"
        cookie = Setting(None, f"file {path}")
    out["cookie"] = cookie

    dist_port = _number(_first(options, env, "dist_port", ("ERL_DIST_PORT",)), int, "dist port")
    if dist_port is not None:
        out["dist_port"] = dist_port
    epmd_port = _number(_first({}, env, "epmd_port", ("ERL_EPMD_PORT",)), int, "EPMD port")
    out["epmd_port"] = epmd_port or Setting(4369, "default")
    ticktime = _number(
        _first(options, env, "net_ticktime", ("BEAMLINK_NET_TICKTIME",)), float, "net_ticktime"
    )
    out["net_ticktime"] = ticktime or Setting(DEFAULT_NET_TICKTIME, "default")
    config = _first(options, env, "config", ("BEAMLINK_CONFIG",))
    if config is not None:
        out["config"] = config
    app = _first(options, env, "app", ("BEAMLINK_APP",))
    if app is not None:
        out["app"] = app
    out["hidden"] = Setting(bool(options.get("hidden")), "--hidden" if options.get("hidden") else "default")
    metrics_port = _number(
        _first(options, env, "metrics_port", ("BEAMLINK_METRICS_PORT",)), int, "metrics port"
    )
    if metrics_port is not None:
        if not 0 <= metrics_port.value <= 0xFFFF:
            raise SettingsError(
                f"metrics port from {metrics_port.source} must be 0..65535, got {metrics_port.value}"
            )
        out["metrics_port"] = metrics_port
        out["metrics_host"] = _first(options, env, "metrics_host", ("BEAMLINK_METRICS_HOST",)) or (
            Setting(DEFAULT_METRICS_HOST, "default")
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
