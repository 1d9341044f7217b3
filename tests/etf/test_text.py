"""The Erlang term text reader: round trips of generated terms (hypothesis), Erlang's own ``~p``
output read back, fuzzing (only `TermSyntaxError` ever escapes), and the error positions."""

from __future__ import annotations

import contextlib
import subprocess
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beamlink.etf import Atom, Charlist, ImproperList, decode, encode
from beamlink.etf.text import MAX_DEPTH, ConstantFun, TermSyntaxError, parse_term
from tests.support.require import require_tool

_UNQUOTED = st.from_regex(r"[a-z][a-zA-Z0-9_@]{0,12}", fullmatch=True).filter(
    lambda w: w not in {"after", "and", "andalso", "band", "begin", "bnot", "bor", "bsl", "bsr",
                        "bxor", "case", "catch", "cond", "div", "end", "fun", "if", "let",
                        "not", "of", "or", "orelse", "receive", "rem", "try", "when", "xor",
                        "maybe", "else"}
)
_TEXT = st.text(st.characters(min_codepoint=1, max_codepoint=0x2FF), max_size=20)

leaves = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    _UNQUOTED.map(Atom),
    _TEXT.map(Atom),
    _TEXT.map(Charlist),
    st.binary(max_size=20),
)
terms = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=5).map(tuple),
    ),
    max_leaves=25,
)


def _quote(text: str, quote: str) -> str:
    out = []
    for char in text:
        if char in (quote, "\\"):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif ord(char) < 32 or ord(char) == 127:
            out.append(f"\\x{{{ord(char):x}}}")
        else:
            out.append(char)
    return quote + "".join(out) + quote


def render(term: Any, spacing: str = "") -> str:
    """Erlang source text of ``term`` (what a person would write in a config file)."""
    sep = "," + spacing
    if isinstance(term, Atom):
        return _quote(str(term), "'")
    if isinstance(term, Charlist):
        return _quote(str(term), '"')
    if isinstance(term, bytes):
        return "<<" + ",".join(map(str, term)) + ">>"
    if isinstance(term, bool):
        raise TypeError(term)
    if isinstance(term, int):
        return str(term)
    if isinstance(term, list):
        return "[" + spacing + sep.join(render(t, spacing) for t in term) + "]"
    if isinstance(term, tuple):
        return "{" + sep.join(render(t, spacing) for t in term) + spacing + "}"
    raise TypeError(term)


def _normal(term: Any) -> Any:
    # "" and [] are the same term in Erlang; the ETF decoder gives true/false as Python bools.
    if isinstance(term, bool):
        return Atom("true" if term else "false")
    if isinstance(term, Charlist) and not term:
        return []
    if isinstance(term, list):
        return [_normal(t) for t in term]
    if isinstance(term, tuple):
        return tuple(_normal(t) for t in term)
    return term


@given(terms, st.sampled_from(["", " ", "\n  ", " % note\n "]))
def test_rendered_terms_read_back(term: Any, spacing: str) -> None:
    assert _normal(parse_term(render(term, spacing) + spacing + ".")) == _normal(term)


@given(st.text(max_size=200))
def test_fuzz_only_syntax_errors_escape(text: str) -> None:
    try:
        parse_term(text)
    except TermSyntaxError as exc:
        assert exc.line >= 1 and exc.column >= 1


@given(terms, st.data())
def test_fuzz_mutated_terms(term: Any, data: st.DataObject) -> None:
    text = render(term) + "."
    at = data.draw(st.integers(0, len(text)))
    junk = data.draw(st.text(max_size=3))
    with contextlib.suppress(TermSyntaxError):
        parse_term(text[:at] + junk + text[at + 1:])


@pytest.mark.parametrize(("text", "value"), [
    ("[{server, [{certfile, \"a.pem\"}]}].", [(Atom("server"), [(Atom("certfile"),
                                                               Charlist("a.pem"))])]),
    ("'hello world'.", Atom("hello world")),
    ("\"ab\" \"cd\".", Charlist("abcd")),
    ("<<\"bin\", 0, 255>>.", b"bin\x00\xff"),
    ("<<\"\u00f0\u00c0\"/utf8, 1>>.", "\u00f0\u00c0".encode() + b"\x01"),  # ~tp's UTF-8 binaries
    ("16#ff.", 255), ("-2#101.", -5), ("$a.", 97), ("$\\n.", 10), ("1_000.", 1000),
    ("2.5e3.", 2500.0), ("[1, 2 | [3]].", [1, 2, 3]), ("[1 | x].", ImproperList([1], Atom("x"))),
    ("'\\x{263a}\\101'.", Atom("\u263aA")), ("true.", Atom("true")), ("[].", []),
    ("\"\\^a\".", Charlist("\x01")),
])
def test_examples(text: str, value: Any) -> None:
    assert parse_term(text) == value


@pytest.mark.parametrize(("text", "where", "words"), [
    ("[a,\n b c].", (2, 4), "expected ','"),
    ("X.", (1, 1), "unexpected 'X'"),
    ("os:cmd(\"rm\").", (1, 3), "expected '.'"),
    ("fun.", (1, 4), r"expected '\(' after 'fun'"),
    ("end.", (1, 1), "keyword"),
    ("fun(x) -> a end.", (1, 5), "expected a variable"),
    ("fun(X) -> X end.", (1, 11), "unexpected 'X'"),
    ("fun(X, X) -> a end.", (1, 8), "repeated"),
    ("fun(_) -> a.", (1, 12), "expected 'end'"),
    ("fun lists:map/2.", (1, 5), r"expected '\('"),
    ("#{a => 1}.", (1, 1), "unexpected '#'"),
    ("[a]", (1, 4), "expected '.'"),
    ("a. b.", (1, 4), "more than one term"),
    ("<<300>>.", (1, 3), "0..255"),
    ("<<\"a\"/utf8x>>.", (1, 11), "expected ',' or '>>', found 'x'"),  # /utf8 then a name char
    ("\"open.", (1, 1), "unterminated"),
    ("37#1.", (1, 1), "base 37"),
])
def test_errors_say_where(text: str, where: tuple[int, int], words: str) -> None:
    with pytest.raises(TermSyntaxError, match=words) as info:
        parse_term(text)
    assert (info.value.line, info.value.column) == where


@given(terms, st.lists(st.sampled_from(["_", "_Name", "X", "Cert", "Y2"]), max_size=4,
                       unique_by=lambda v: v if v != "_" else object()),
       st.sampled_from(["", " ", "\n  ", " % note\n "]))
def test_constant_funs_read_back(term: Any, names: list[str], spacing: str) -> None:
    """``fun(Vars) -> Term end`` (any arity, blanks and comments anywhere) reads as a
    `ConstantFun`; its body is only ever read as a term, never run."""
    text = (f"fun{spacing}({spacing}{(',' + spacing).join(names)}{spacing}){spacing}->"
            f"{spacing}{render(term, spacing)}{spacing}end{spacing}.")
    fun = parse_term(text)
    assert isinstance(fun, ConstantFun)
    assert fun.arity == len(names)
    assert _normal(fun.value) == _normal(term)


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(TermSyntaxError, match="deeper"):
        parse_term("[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + ".")


@settings(max_examples=8)
@given(st.lists(terms, min_size=25, max_size=25))
def test_erlangs_own_printing_reads_back(batch: list[Any]) -> None:
    """erl prints each term with ~p (quoting, escapes, line breaks its own way); we read it."""
    erl = require_tool("erl")
    hexes = ",".join(f'"{encode(t).hex()}"' for t in batch)
    script = (
        "io:setopts([{encoding, unicode}]), "
        f"[io:format(\"~tp.~n\\x00~n\", [binary_to_term(binary:decode_hex(list_to_binary(H)))]) "
        f"|| H <- [{hexes}]], halt()."
    )
    out = subprocess.run([erl, "-noshell", "-eval", script], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    texts = [t.strip() for t in out.split("\x00") if t.strip()]
    assert len(texts) == len(batch)
    for text, term in zip(texts, batch, strict=True):
        expected = _normal(decode(encode(term)))
        got = _normal(parse_term(text))
        # ~p prints printable lists as strings and other lists of integers as lists.
        assert _flatten_strings(got) == _flatten_strings(expected), text


def _flatten_strings(term: Any) -> Any:
    if isinstance(term, Charlist):
        return [ord(c) for c in term]
    if isinstance(term, list):
        return [_flatten_strings(t) for t in term]
    if isinstance(term, tuple):
        return tuple(_flatten_strings(t) for t in term)
    return term
