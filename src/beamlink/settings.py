"""Every setting beamlink reads from the environment, defined once: variables, precedence, range.

Precedence, like mix releases: an explicit value (a function argument or a command-line option),
then the ``BEAMLINK_*`` variable, then mix release's ``RELEASE_*`` one (or OTP's ``ERL_*``), then
the default. Values from every source are checked; a bad one raises `SettingsError` (a
`ConfigurationError` and a ``ValueError``) naming the setting, where the value came from and what
is accepted. An empty variable counts as unset. The cookie has no default here: the distribution
layer falls back to ``~/.erlang.cookie``. The node, the EPMD client and server, the cluster
layer and the CLI all read their settings through this module, which imports nothing from
beamlink but the error tree.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from beamlink.errors import ConfigurationError

T = TypeVar("T")

ARGUMENT = "argument"
DEFAULT = "default"
MAX_PORT = 0xFFFF
# Erlang keeps the cookie as an atom: at most 255 characters, and the digest hashes its latin-1 bytes.
MAX_COOKIE_LENGTH = 255


class SettingsError(ConfigurationError, ValueError):
    """A setting is missing or out of range; the message names it, its source and what is accepted."""


@dataclass(frozen=True)
class Setting:
    """One effective value and where it came from (``"--name"``, ``"env BEAMLINK_NODE"``...)."""

    value: Any
    source: str


@dataclass(frozen=True)
class EnvSetting(Generic[T]):
    """A setting: what it is, its variables (first wins), the accepted values and a default.

    ``parse`` turns a variable's text or an explicit value into the setting's value and raises
    ``ValueError`` or ``TypeError`` when the value is not ``accepted`` (a phrase for messages).
    """

    what: str
    variables: tuple[str, ...]
    parse: Callable[[Any], T]
    accepted: str
    default: T | None = None

    def lookup(
        self, value: Any = None, *, env: Mapping[str, str] | None = None, source: str = ARGUMENT
    ) -> Setting | None:
        """``value`` (from ``source``) if given, else the first variable set, else the default.

        None when none of them is set. Raises `SettingsError` for a value out of range.
        """
        if value is not None and value != "":
            return Setting(self.check(value, source), source)
        env = os.environ if env is None else env
        for variable in self.variables:
            raw = env.get(variable, "")
            if raw.strip():
                where = f"env {variable}"
                return Setting(self.check(raw, where), where)
        return None if self.default is None else Setting(self.default, DEFAULT)

    def get(self, value: Any = None, *, env: Mapping[str, str] | None = None) -> T | None:
        """The effective value (see `lookup`), None when nothing sets it."""
        found = self.lookup(value, env=env)
        return None if found is None else found.value

    def require(
        self, value: Any = None, *, env: Mapping[str, str] | None = None, source: str = ARGUMENT
    ) -> Setting:
        """Like `lookup`, but a missing value raises `SettingsError` saying how to give one."""
        found = self.lookup(value, env=env, source=source)
        if found is None:
            raise SettingsError(f"no {self.what}: pass one or set {' or '.join(self.variables)}")
        return found

    def check(self, value: Any, source: str) -> T:
        """``value`` parsed, or `SettingsError` naming ``source`` and the accepted values."""
        try:
            return self.parse(value)
        except (TypeError, ValueError):
            raise self.invalid(value, source) from None

    def invalid(self, value: Any, source: str, why: str = "") -> SettingsError:
        """The error for a bad ``value`` from ``source`` (``why`` adds the parser's reason)."""
        reason = f" ({why})" if why else ""
        return SettingsError(
            f"{self.what} from {source} must be {self.accepted}, got {value!r}{reason}"
        )


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(value)
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit()):
            raise ValueError(value)
        return int(text)
    if not isinstance(value, int):
        raise TypeError(value)
    return value


def _in_range(parse: Callable[[Any], int], low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        number = parse(value)
        if not low <= number <= high:
            raise ValueError(value)
        return number

    return check


def _positive_seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError(value)
    seconds = float(value.strip() if isinstance(value, str) else value)
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(value)
    return seconds


def _choice(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(value)
        return str(value)

    return check


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    return value


def _cookie(value: Any) -> str:
    text = _text(value)
    text.encode("latin-1")  # UnicodeEncodeError is a ValueError
    if len(text) > MAX_COOKIE_LENGTH:
        raise ValueError(value)
    return text


def _port(low: int) -> Callable[[Any], int]:
    return _in_range(_integer, low, MAX_PORT)


DEFAULT_EPMD_PORT = 4369
DEFAULT_NET_TICKTIME = 60.0
DEFAULT_STALL_THRESHOLD = 0.1
DEFAULT_WORKERS = 64
MAX_WORKERS = 10_000
DEFAULT_METRICS_HOST = "127.0.0.1"
DEFAULT_DASHBOARD_HOST = "127.0.0.1"
DISTRIBUTIONS = ("name", "sname", "none")

COOKIE: EnvSetting[str] = EnvSetting(
    "cookie", ("BEAMLINK_COOKIE", "RELEASE_COOKIE"), _cookie,
    f"latin-1 text of at most {MAX_COOKIE_LENGTH} characters",
)
NODE_NAME: EnvSetting[str] = EnvSetting(
    "node name", ("BEAMLINK_NODE", "RELEASE_NODE"), _text, "name@host or a bare name"
)
DISTRIBUTION: EnvSetting[str] = EnvSetting(
    "distribution mode", ("RELEASE_DISTRIBUTION",), _choice(*DISTRIBUTIONS),
    "name, sname or none", default="name",
)
EVENT_LOOP: EnvSetting[str] = EnvSetting(
    "event loop", ("BEAMLINK_EVENT_LOOP",), _choice("auto", "asyncio", "uvloop"),
    "auto, asyncio or uvloop", default="auto",
)
DIST_PORT: EnvSetting[int] = EnvSetting(
    "distribution port", ("ERL_DIST_PORT",), _port(1), f"a port number 1..{MAX_PORT}"
)
EPMD_PORT: EnvSetting[int] = EnvSetting(
    "EPMD port", ("ERL_EPMD_PORT",), _port(1), f"a port number 1..{MAX_PORT}",
    default=DEFAULT_EPMD_PORT,
)
NET_TICKTIME: EnvSetting[float] = EnvSetting(
    "net_ticktime", ("BEAMLINK_NET_TICKTIME",), _positive_seconds,
    "a number of seconds greater than 0", default=DEFAULT_NET_TICKTIME,
)
STALL_THRESHOLD: EnvSetting[float] = EnvSetting(
    "event loop stall threshold", ("BEAMLINK_STALL_THRESHOLD",), _positive_seconds,
    "a number of seconds greater than 0", default=DEFAULT_STALL_THRESHOLD,
)
WORKERS: EnvSetting[int] = EnvSetting(
    "worker threads", ("BEAMLINK_WORKERS",), _in_range(_integer, 1, MAX_WORKERS),
    f"a whole number 1..{MAX_WORKERS}", default=DEFAULT_WORKERS,
)
PROCESSES: EnvSetting[int] = EnvSetting(
    "worker processes", ("BEAMLINK_PROCESSES",), _in_range(_integer, 0, MAX_WORKERS),
    f"a whole number 0..{MAX_WORKERS} (0: no process pool)", default=0,
)
CONFIG: EnvSetting[str] = EnvSetting(
    "cluster config file", ("BEAMLINK_CONFIG",), _text, "a file path"
)
SSL_DIST_OPTFILE: EnvSetting[str] = EnvSetting(
    "ssl_dist_optfile", ("BEAMLINK_SSL_DIST_OPTFILE",), _text,
    "the path of an OTP ssl_dist_optfile ([{server, [...]}, {client, [...]}].)",
)
APP: EnvSetting[str] = EnvSetting("app", ("BEAMLINK_APP",), _text, "package.module:attr")
LISTEN_HOST: EnvSetting[str] = EnvSetting(
    "listen host", ("BEAMLINK_LISTEN_HOST",), _text, "an address to listen on"
)
METRICS_PORT: EnvSetting[int] = EnvSetting(
    "metrics port", ("BEAMLINK_METRICS_PORT",), _port(0),
    f"a port number 0..{MAX_PORT} (0 picks a free one)",
)
METRICS_HOST: EnvSetting[str] = EnvSetting(
    "metrics host", ("BEAMLINK_METRICS_HOST",), _text, "an address to listen on",
    default=DEFAULT_METRICS_HOST,
)
DASHBOARD_PORT: EnvSetting[int] = EnvSetting(
    "dashboard port", ("BEAMLINK_DASHBOARD_PORT",), _port(0),
    f"a port number 0..{MAX_PORT} (0 picks a free one)",
)
HEALTH_FILE: EnvSetting[str] = EnvSetting(
    "health file", ("BEAMLINK_HEALTH_FILE",), _text, "a file path"
)
DASHBOARD_HOST: EnvSetting[str] = EnvSetting(
    "dashboard host", ("BEAMLINK_DASHBOARD_HOST",), _text, "an address to listen on",
    default=DEFAULT_DASHBOARD_HOST,
)
