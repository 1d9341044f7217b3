"""A safe reader of ``.hosts.erlang`` files: Erlang terms, one host per term (``'host1'.``).

Only what the file may legitimately hold is accepted: quoted atoms (``'db.example.com'``),
unquoted atoms (``localhost``), strings (``"host"``), ``%`` comments and whitespace. Nothing is
evaluated; anything else is a ``HostsFileError`` naming the line.
"""

from __future__ import annotations

from pathlib import Path

from beamlink.errors import ConfigurationError

_UNQUOTED_START = frozenset("abcdefghijklmnopqrstuvwxyz")
_UNQUOTED_REST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@")
_ESCAPES = {"n": "\n", "t": "\t", "s": " ", "\\": "\\", "'": "'", '"': '"'}


class HostsFileError(ConfigurationError, ValueError):
    """The file is not a list of host terms."""


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    @property
    def line(self) -> int:
        return self.text.count("\n", 0, self.pos) + 1

    def fail(self, message: str) -> HostsFileError:
        return HostsFileError(f"line {self.line}: {message}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_blank(self) -> None:
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "%":
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            elif char.isspace():
                self.pos += 1
            else:
                return

    def quoted(self, quote: str) -> str:
        self.pos += 1
        out: list[str] = []
        while True:
            char = self.peek()
            if char == "":
                raise self.fail(f"unterminated {quote}...{quote}")
            self.pos += 1
            if char == quote:
                return "".join(out)
            if char == "\\":
                escaped = self.peek()
                if escaped not in _ESCAPES:
                    raise self.fail(f"unsupported escape \\{escaped}")
                out.append(_ESCAPES[escaped])
                self.pos += 1
            elif char == "\n":
                raise self.fail("newline inside a quoted host")
            else:
                out.append(char)

    def unquoted(self) -> str:
        start = self.pos
        while self.peek() and self.peek() in _UNQUOTED_REST:
            self.pos += 1
        return self.text[start : self.pos]

    def term(self) -> str:
        char = self.peek()
        if char in ("'", '"'):
            host = self.quoted(char)
        elif char and char in _UNQUOTED_START:
            host = self.unquoted()
        else:
            raise self.fail(f"expected a host atom or string, found {char!r}")
        if not host or any(c.isspace() or not c.isprintable() for c in host):
            raise self.fail(f"{host!r} is not a host name")
        self.skip_blank()
        if self.peek() != ".":
            raise self.fail(f"expected '.' after {host!r}")
        self.pos += 1
        if self.peek() and not (self.peek().isspace() or self.peek() == "%"):
            raise self.fail("expected whitespace after '.'")
        return host


def parse_hosts_erlang(text: str) -> list[str]:
    """The hosts listed in ``text``, in order, without duplicates."""
    reader = _Reader(text)
    hosts: list[str] = []
    reader.skip_blank()
    while reader.peek():
        host = reader.term()
        if host not in hosts:
            hosts.append(host)
        reader.skip_blank()
    return hosts


def find_hosts_file(explicit: str | None) -> Path | None:
    """``explicit``, else ``./.hosts.erlang``, else ``~/.hosts.erlang`` (as net_adm does)."""
    if explicit is not None:
        return Path(explicit)
    for candidate in (Path.cwd() / ".hosts.erlang", Path.home() / ".hosts.erlang"):
        if candidate.is_file():
            return candidate
    return None
