"""A reader of Erlang term *text* (what ``file:consult/1`` reads), for configuration files such as
OTP's ``ssl_dist_optfile``.

Sans-I/O and never evaluating anything: `parse_term` takes the text of one term followed by a
full stop and returns it as beamlink terms. The subset is what configuration files hold: lists
(proper, and ``[H | T]``), tuples, atoms (``plain``, ``'quoted'``, ``true``/``false`` stay atoms),
strings (``"..."``, adjacent strings concatenated) as `Charlist`, binaries (``<<"text">>`` and
``<<1,2,3>>``, as ``bytes``), integers (decimal, ``Base#digits``, ``$c`` characters, signs, ``_``
digit separators), floats, and ``%`` comments. One kind of fun is read too, without running
anything: a fun that ignores its arguments and returns a constant term, such as
``fun(_, _) -> true end`` (a `ConstantFun`; OTP's optfile needs it to turn the host name check
off, see `beamlink.connection.optfile`). Anything else (variables, operators, function calls,
maps, other funs) is a `TermSyntaxError` naming the line and column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from beamlink.errors import ConfigurationError

from .terms import Atom, Charlist, ImproperList

__all__ = ["MAX_DEPTH", "ConstantFun", "TermSyntaxError", "parse_term"]

MAX_DEPTH = 200
# As erl_scan: latin-1 lowercase letters start an unquoted atom, latin-1 letters continue it.
_LOWER = "abcdefghijklmnopqrstuvwxyz" + "".join(chr(c) for c in range(0xDF, 0x100) if c != 0xF7)
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ" + "".join(chr(c) for c in range(0xC0, 0xDF) if c != 0xD7)
_ATOM_START = frozenset(_LOWER)
_NAME_REST = frozenset(_LOWER + _UPPER + "0123456789_@")
_VARIABLE_START = frozenset(_UPPER + "_")
_ESCAPES = {
    "n": "\n", "r": "\r", "t": "\t", "s": " ", "b": "\b", "f": "\f", "v": "\v", "e": "\x1b",
    "d": "\x7f", "\\": "\\", "'": "'", '"': '"',
}
_OCTAL = frozenset("01234567")
_HEX = frozenset("0123456789abcdefABCDEF")
# Words that are operators or keywords in Erlang, never atoms without quotes (``maybe`` and
# ``else`` only are with the maybe_expr feature; file:consult of OTP 25 and 26 reads them as atoms).
_RESERVED = frozenset(
    ["after", "and", "andalso", "band", "begin", "bnot", "bor", "bsl", "bsr", "bxor", "case", "catch", "cond", "div", "end", "fun", "if", "let", "not", "of", "or", "orelse", "receive", "rem", "try", "when", "xor"]
)


@dataclass(frozen=True)
class ConstantFun:
    """``fun(A1, ..., An) -> Value end`` whose body is a constant term: it ignores its ``arity``
    arguments and returns ``value``. The only fun the reader accepts, since it needs no code run."""

    arity: int
    value: Any


class TermSyntaxError(ConfigurationError, ValueError):
    """The text is not one Erlang term followed by ``.``; the message says where and why."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.line = line
        self.column = column


class _Reader:
    __slots__ = ("depth", "pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0

    def fail(self, message: str, pos: int | None = None) -> TermSyntaxError:
        at = self.pos if pos is None else pos
        line = self.text.count("\n", 0, at) + 1
        column = at - (self.text.rfind("\n", 0, at) + 1) + 1
        return TermSyntaxError(message, line, column)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def blank(self) -> None:
        text, size = self.text, len(self.text)
        while self.pos < size:
            char = text[self.pos]
            if char == "%":
                end = text.find("\n", self.pos)
                self.pos = size if end < 0 else end
            elif char.isspace():
                self.pos += 1
            else:
                return

    def expect(self, token: str) -> None:
        self.blank()
        if not self.text.startswith(token, self.pos):
            found = self.peek() or "end of text"
            raise self.fail(f"expected {token!r}, found {found!r}")
        self.pos += len(token)

    # -- terms ------------------------------------------------------------------------------------

    def term(self) -> Any:
        self.blank()
        char = self.peek()
        if char == "":
            raise self.fail("expected a term, found end of text")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"terms nested deeper than {MAX_DEPTH}")
        try:
            if char == "[":
                return self.list()
            if char == "{":
                return self.tuple()
            if self.text.startswith("<<", self.pos):
                return self.binary()
            if char == '"':
                return Charlist(self.strings())
            if char == "'":
                return Atom(self.quoted("'"))
            if char in _ATOM_START:
                return self.atom()
            if char.isdigit() or char in "+-$":
                return self.number()
            raise self.fail(f"unexpected {char!r} (only lists, tuples, atoms, strings, "
                            "binaries and numbers are read)")
        finally:
            self.depth -= 1

    def sequence(self, close: str) -> tuple[list[Any], Any]:
        """Items up to ``close``; the tail after ``|`` (lists only) or None."""
        self.pos += 1
        items: list[Any] = []
        self.blank()
        if self.peek() == close:
            self.pos += 1
            return items, None
        while True:
            items.append(self.term())
            self.blank()
            char = self.peek()
            if char == ",":
                self.pos += 1
            elif char == close:
                self.pos += 1
                return items, None
            elif char == "|" and close == "]" and not self.text.startswith("||", self.pos):
                self.pos += 1
                tail = self.term()
                self.expect(close)
                return items, tail
            else:
                raise self.fail(f"expected ',' or {close!r}, found {char or 'end of text'!r}")

    def list(self) -> Any:
        items, tail = self.sequence("]")
        if tail is None or tail == []:
            return items
        if isinstance(tail, list):
            return items + tail
        return ImproperList(items, tail)

    def tuple(self) -> tuple[Any, ...]:
        items, _ = self.sequence("}")
        return tuple(items)

    def binary(self) -> bytes:
        self.pos += 2
        out = bytearray()
        self.blank()
        if self.text.startswith(">>", self.pos):
            self.pos += 2
            return bytes(out)
        while True:
            self.blank()
            start = self.pos
            if self.peek() == '"':
                text = self.strings()
                self.blank()
                if self.text.startswith("/utf8", self.pos):  # how ~tp prints UTF-8 binaries
                    self.pos += 5
                    out += text.encode("utf-8")
                else:
                    try:
                        out += text.encode("latin-1")
                    except UnicodeEncodeError:
                        raise self.fail("a binary string holds only latin-1 characters "
                                        "(write <<\"...\"/utf8>> in Erlang)", start) from None
            else:
                value = self.number()
                if not isinstance(value, int) or not 0 <= value <= 255:
                    raise self.fail("a binary segment is a string or an integer 0..255", start)
                out.append(value)
            self.blank()
            if self.peek() == ",":
                self.pos += 1
            elif self.text.startswith(">>", self.pos):
                self.pos += 2
                return bytes(out)
            else:
                raise self.fail(f"expected ',' or '>>', found {self.peek() or 'end of text'!r}")

    def strings(self) -> str:
        """One string, or adjacent ones joined (``"a" "b"`` is ``"ab"``)."""
        parts = [self.quoted('"')]
        while True:
            save = self.pos
            self.blank()
            if self.peek() != '"':
                self.pos = save
                return "".join(parts)
            parts.append(self.quoted('"'))

    def quoted(self, quote: str) -> str:
        start = self.pos
        self.pos += 1
        out: list[str] = []
        text = self.text
        while True:
            end = self.pos
            while end < len(text) and text[end] not in (quote, "\\"):
                end += 1
            out.append(text[self.pos:end])
            self.pos = end
            char = self.peek()
            if char == "":
                raise self.fail(f"unterminated {quote}...{quote}", start)
            self.pos += 1
            if char == quote:
                return "".join(out)
            out.append(self.escape())

    def escape(self) -> str:
        """The character of the escape sequence after a backslash."""
        char = self.peek()
        if char == "":
            raise self.fail("a backslash at the end of the text")
        self.pos += 1
        if char in _ESCAPES:
            return _ESCAPES[char]
        if char in _OCTAL:
            digits = char
            while len(digits) < 3 and self.peek() in _OCTAL and self.peek():
                digits += self.peek()
                self.pos += 1
            return chr(int(digits, 8))
        if char == "x":
            if self.peek() == "{":
                end = self.text.find("}", self.pos)
                digits = self.text[self.pos + 1:end] if end > 0 else ""
                if not digits or not set(digits) <= _HEX:
                    raise self.fail("bad \\x{...} escape")
                self.pos = end + 1
            else:
                digits = self.text[self.pos:self.pos + 2]
                if len(digits) != 2 or not set(digits) <= _HEX:
                    raise self.fail("bad \\xHH escape")
                self.pos += 2
            code = int(digits, 16)
            if code > 0x10FFFF:
                raise self.fail("character code out of range")
            return chr(code)
        if char == "^":
            ctrl = self.peek()
            if not ctrl.isalpha() or not ctrl.isascii():
                raise self.fail("bad \\^ escape")
            self.pos += 1
            return chr(ord(ctrl) & 0x1F)
        return char  # Erlang keeps an unknown escaped character as itself

    def atom(self) -> Atom | ConstantFun:
        start = self.pos
        end = start
        text = self.text
        while end < len(text) and text[end] in _NAME_REST:
            end += 1
        word = text[start:end]
        if word == "fun":
            self.pos = end
            return self.fun(start)
        if word in _RESERVED:
            raise self.fail(f"{word!r} is an Erlang keyword; quote it ('{word}') to make an atom")
        self.pos = end
        return Atom(word)

    def fun(self, start: int) -> ConstantFun:
        """``fun(Vars) -> Term end`` after the word ``fun`` (which began at ``start``)."""
        shape = "only a fun returning a constant is read, such as fun(_, _) -> true end"
        self.blank()
        if self.peek() != "(":
            raise self.fail(f"expected '(' after 'fun' ({shape})")
        self.pos += 1
        names: list[str] = []
        self.blank()
        if self.peek() == ")":
            self.pos += 1
        else:
            while True:
                self.blank()
                begin = self.pos
                while self.pos < len(self.text) and self.text[self.pos] in _NAME_REST:
                    self.pos += 1
                name = self.text[begin:self.pos]
                if not name or name[0] not in _VARIABLE_START:
                    raise self.fail(f"expected a variable as the fun's argument ({shape})", begin)
                if name != "_" and name in names:
                    # fun(X, X) matches only equal arguments: not a constant function
                    raise self.fail(f"variable {name!r} repeated in the fun's arguments", begin)
                names.append(name)
                self.blank()
                if self.peek() == ")":
                    self.pos += 1
                    break
                self.expect(",")
        self.expect("->")
        value = self.term()
        self.blank()
        if not self.text.startswith("end", self.pos) or (
            self.pos + 3 < len(self.text) and self.text[self.pos + 3] in _NAME_REST
        ):
            raise self.fail(f"expected 'end' after the fun's constant ({shape})")
        self.pos += 3
        return ConstantFun(len(names), value)

    def number(self) -> int | float:
        start = self.pos
        sign = 1
        if self.peek() in "+-":
            sign = -1 if self.peek() == "-" else 1
            self.pos += 1
            if not (self.peek().isdigit() or self.peek() == "$"):
                raise self.fail("a sign must be followed by a number", start)
        if self.peek() == "$":
            self.pos += 1
            char = self.peek()
            if char == "":
                raise self.fail("'$' at the end of the text", start)
            self.pos += 1
            return sign * ord(self.escape() if char == "\\" else char)
        digits = self.digits("0123456789")
        if self.peek() == "#":
            base = int(digits)
            if not 2 <= base <= 36:
                raise self.fail(f"base {base} is not within 2..36", start)
            self.pos += 1
            allowed = "0123456789abcdefghijklmnopqrstuvwxyz"[:base]
            value = self.digits(allowed + allowed.upper())
            return sign * int(value, base)
        if self.peek() == "." and self.pos + 1 < len(self.text) and self.text[self.pos + 1].isdigit():
            self.pos += 1
            fraction = self.digits("0123456789")
            exponent = ""
            if self.peek() in ("e", "E"):
                self.pos += 1
                exp_sign = ""
                if self.peek() in "+-":
                    exp_sign = self.peek()
                    self.pos += 1
                exponent = "e" + exp_sign + self.digits("0123456789")
            return sign * float(f"{digits}.{fraction}{exponent}")
        return sign * int(digits)

    def digits(self, allowed: str) -> str:
        start = self.pos
        text = self.text
        end = start
        while end < len(text) and (text[end] in allowed or (
            text[end] == "_" and end > start and end + 1 < len(text) and text[end + 1] in allowed
        )):
            end += 1
        if end == start:
            raise self.fail("expected digits")
        self.pos = end
        return text[start:end].replace("_", "")


def parse_term(text: str) -> Any:
    """The one term in ``text``, which must end with a full stop (comments and blanks around it
    are fine). Raises `TermSyntaxError` for anything else."""
    reader = _Reader(text)
    value = reader.term()
    reader.blank()
    if reader.peek() != ".":
        raise reader.fail(f"expected '.' after the term, found {reader.peek() or 'end of text'!r}")
    reader.pos += 1
    if reader.pos < len(text) and not (text[reader.pos].isspace() or text[reader.pos] == "%"):
        raise reader.fail("expected whitespace or end of text after the final '.'")
    reader.blank()
    if reader.pos != len(text):
        raise reader.fail("more than one term (a file for this holds exactly one)")
    return value
