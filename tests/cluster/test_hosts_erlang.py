"""The ``.hosts.erlang`` reader: accepted forms, rejected code, and property tests."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beamlink.cluster.hosts_erlang import HostsFileError, parse_hosts_erlang

HOST = st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z0-9-]{1,10}){0,3}", fullmatch=True)


def test_accepted_forms() -> None:
    text = "% cluster hosts\n'db1.example.com'.\n\"db2\" .  % trailing\nlocalhost.\n'db1.example.com'.\n"
    assert parse_hosts_erlang(text) == ["db1.example.com", "db2", "localhost"]


def test_empty_and_comments_only() -> None:
    assert parse_hosts_erlang("") == []
    assert parse_hosts_erlang("% nothing\n\n") == []


@pytest.mark.parametrize(
    "text",
    [
        "os:cmd(\"id\").",
        "{host, 'a'}.",
        "['a', 'b'].",
        "'a'",
        "'a'.'b'.",
        "'unterminated.\n",
        "Var.",
        "'a\\x41'.",
        "''.",
        "'two words'.",
        "1.",
    ],
)
def test_rejected(text: str) -> None:
    with pytest.raises(HostsFileError, match="line"):
        parse_hosts_erlang(text)


@given(st.lists(HOST, max_size=10), st.sampled_from(["'", '"']), st.sampled_from(["\n", " ", "\t\n"]))
def test_roundtrip(hosts: list[str], quote: str, sep: str) -> None:
    text = sep.join(f"{quote}{host}{quote}." for host in hosts)
    assert parse_hosts_erlang(text) == list(dict.fromkeys(hosts))


@given(st.text(max_size=200))
def test_never_raises_anything_but_hosts_file_error(text: str) -> None:
    try:
        hosts = parse_hosts_erlang(text)
    except HostsFileError:
        return
    assert all(host and host.isprintable() for host in hosts)
