"""Node names: parse and validate ``name@host`` (long names) and short names.

Rules follow net_kernel: the part before ``@`` is letters, digits, ``_`` and ``-``; a long name's
host is a fully qualified domain name (it contains a dot) or an IP address; a short name's host
has no dot. A node name is an atom, so at most 255 characters. No I/O except `local_host`.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

from beamlink.errors import ConfigurationError

MAX_NODE_NAME_LENGTH = 255
_NAME_PART = re.compile(r"[A-Za-z0-9_-]+")
_HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?")


class NodeNameError(ConfigurationError, ValueError):
    """A node name that is not ``name@host`` with valid parts."""


@dataclass(frozen=True)
class NodeName:
    """A validated node name; `full` is what goes on the wire and into atoms."""

    name: str
    host: str

    @property
    def full(self) -> str:
        return f"{self.name}@{self.host}"

    @property
    def is_long(self) -> bool:
        return "." in self.host or _is_ip(self.host)

    def __str__(self) -> str:
        return self.full

    @classmethod
    def parse(cls, text: str, *, long: bool | None = None) -> NodeName:
        """Parse ``name@host``; `long` True/False also enforces long/short host rules."""
        if len(text) > MAX_NODE_NAME_LENGTH:
            raise NodeNameError(f"node name longer than {MAX_NODE_NAME_LENGTH} characters")
        name, sep, host = text.partition("@")
        if not sep or "@" in host:
            raise NodeNameError(f"{text!r}: a node name is exactly one 'name@host'")
        _check_name_part(name)
        _check_host(host)
        node = cls(name, host)
        if long is True and not node.is_long:
            raise NodeNameError(
                f"{text!r}: a long name needs a fully qualified host or an IP address"
            )
        if long is False and node.is_long:
            raise NodeNameError(f"{text!r}: a short name's host has no dots (use a long name)")
        return node

    @classmethod
    def short(cls, name: str, host: str | None = None) -> NodeName:
        """A short name: ``name`` on `host` (default: this machine's short host name)."""
        return cls.parse(f"{name}@{host or local_host(long=False)}", long=False)


def is_node_name(text: str) -> bool:
    """True if `text` parses as a node name (long or short)."""
    try:
        NodeName.parse(text)
    except NodeNameError:
        return False
    return True


def local_host(*, long: bool) -> str:
    """This machine's host part: the first label of its name, or its fully qualified name."""
    hostname = socket.gethostname()
    if long:
        fqdn = socket.getfqdn(hostname)
        return fqdn if "." in fqdn else hostname
    return hostname.split(".", 1)[0]


def _check_name_part(name: str) -> None:
    if not _NAME_PART.fullmatch(name):
        raise NodeNameError(
            f"node name part {name!r}: use letters, digits, '_' and '-' (at least one)"
        )


def _check_host(host: str) -> None:
    if not host:
        raise NodeNameError("empty host part")
    if _is_ip(host):
        return
    labels = host.split(".")
    if not all(len(label) <= 63 and _HOST_LABEL.fullmatch(label) for label in labels):
        raise NodeNameError(f"host part {host!r} is neither a host name nor an IP address")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
