"""Random Python terms together with their Erlang source text, for golden tests against ``erl``.

``to_erlang`` prints a Python term as an Erlang expression without using the codec, so a real
Erlang node can build the expected value independently and compare it with beamlink's bytes.
"""

from __future__ import annotations

import random
from typing import Any

from beamlink.etf import (
    Atom,
    BitString,
    Charlist,
    Export,
    FrozenList,
    ImproperList,
    Map,
)

EDGE_INTEGERS = sorted(
    {
        sign * base + delta
        for base in (0, 1, 255, 256, 2**27, 2**31, 2**32, 2**63, 2**64, 2**2040, 2**4000)
        for sign in (1, -1)
        for delta in (-1, 0, 1)
    }
)
ALPHABET = "abcXYZ_@.019 'é\\π日😀\n"


def quote_atom(name: str) -> str:
    """Erlang source for the atom ``name`` (always quoted)."""
    out = []
    for ch in name:
        if ch in "\\'":
            out.append("\\" + ch)
        elif ord(ch) < 32:
            out.append(f"\\x{{{ord(ch):x}}}")
        else:
            out.append(ch)
    return "'" + "".join(out) + "'"


def float_text(value: float) -> str:
    """Erlang float literal for ``value`` (always with a fraction part)."""
    text = repr(value)
    mantissa, _, exponent = text.partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return mantissa + ("e" + exponent if exponent else "")


def _seq(items: Any) -> str:
    return ",".join(to_erlang(x) for x in items)


def to_erlang(term: Any) -> str:
    """The Erlang expression whose value is ``term`` under beamlink's type mapping."""
    if term is True or term is False:
        return "true" if term else "false"
    if term is None:
        return "undefined"
    kind = type(term)
    if kind is Atom:
        return quote_atom(term)
    if kind is int:
        return str(term)
    if kind is float:
        if term == 0.0 and str(term).startswith("-"):
            return "binary_to_term(<<131,70,128,0,0,0,0,0,0,0>>)"  # OTP 25 has no -0.0 literal
        return float_text(term)
    if kind is bytes:
        return "<<" + ",".join(map(str, term)) + ">>"
    if kind is str:
        return to_erlang(term.encode("utf-8"))
    if kind is Charlist:
        return "[" + ",".join(str(ord(c)) for c in term) + "]"
    if kind is BitString:
        last = term.data[-1] >> (8 - term.bits)
        return "<<" + "".join(f"{b}," for b in term.data[:-1]) + f"{last}:{term.bits}>>"
    if kind in (list, FrozenList):
        return "[" + _seq(term) + "]"
    if kind is ImproperList:
        return "[" + _seq(term.items) + "|" + to_erlang(term.tail) + "]"
    if kind is tuple:
        return "{" + _seq(term) + "}"
    if kind is dict:
        return "#{" + ",".join(f"{to_erlang(k)}=>{to_erlang(v)}" for k, v in term.items()) + "}"
    if kind is Map:
        return "#{" + ",".join(f"{to_erlang(k)}=>{to_erlang(v)}" for k, v in term.pairs) + "}"
    if kind is Export:
        return f"fun {quote_atom(term.module)}:{quote_atom(term.function)}/{term.arity}"
    raise TypeError(f"no Erlang text for {kind.__name__}")


def exact(term: Any) -> bool:
    """True when Erlang's own encoding must equal beamlink's byte for byte (no multi-key map:
    Erlang orders map keys itself)."""
    kind = type(term)
    if kind is dict:
        return len(term) < 2 and all(exact(k) and exact(v) for k, v in term.items())
    if kind is Map:
        return False
    if kind in (list, tuple, FrozenList):
        return all(map(exact, term))
    if kind is ImproperList:
        return all(map(exact, term.items)) and exact(term.tail)
    return True


def random_text(rng: random.Random, size: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(size))


def random_term(rng: random.Random, depth: int = 3) -> Any:
    """A random Python term (any type beamlink encodes), nested up to ``depth``."""
    leaves = 12
    choice = rng.randrange(leaves + (4 if depth > 0 else 0))
    if choice == 0:
        return rng.choice(EDGE_INTEGERS)
    if choice == 1:
        return rng.randrange(-(2**70), 2**70) >> rng.randrange(70)
    if choice == 2:
        return rng.choice([0.0, -0.0, 1e308, 5e-324]) if rng.random() < 0.2 else (
            (rng.random() - 0.5) * 10 ** rng.randrange(-20, 20)
        )
    if choice == 3:
        return Atom(random_text(rng, rng.randrange(12)))
    if choice == 4:
        return rng.randbytes(rng.randrange(20))
    if choice == 5:
        return random_text(rng, rng.randrange(10))
    if choice == 6:
        return Charlist(random_text(rng, rng.randrange(10)))
    if choice == 7:
        return BitString(rng.randbytes(rng.randrange(1, 4)), rng.randrange(1, 8))
    if choice == 8:
        return rng.choice([True, False, None])
    if choice == 9:
        return Export(Atom(random_text(rng, 5)), Atom(random_text(rng, 3)), rng.randrange(256))
    if choice == 10:
        return [rng.randrange(256) for _ in range(rng.randrange(1, 10))]
    if choice == 11:
        return rng.choice([(), [], {}, b"", ""])
    items = [random_term(rng, depth - 1) for _ in range(rng.randrange(6))]
    if choice == 12:
        return tuple(items)
    if choice == 13:
        return items
    if choice == 14:
        tail = random_term(rng, 0)
        return ImproperList(items or [1], Atom("t") if isinstance(tail, list | str) else tail)
    keys = [random_term(rng, 0) for _ in items]
    # str keys would alias bytes keys, bool/None keys would alias atom keys: both are
    # rejected by the encoder (tested elsewhere), so keys here are of the other types.
    allowed = (int, float, bytes, Atom, Charlist, BitString, tuple, Export)
    return {k: v for k, v in zip(keys, items, strict=True) if type(k) in allowed}
