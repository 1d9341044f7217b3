"""Node names, cookies and flags of `beamlink.distribution`."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beamlink.distribution import flags
from beamlink.distribution.cookie import CookieError, digest, new_challenge, resolve_cookie
from beamlink.distribution.names import NodeName, NodeNameError, is_node_name
from tests.support.require import require_tool


@pytest.mark.parametrize(
    "text, long",
    [("app@127.0.0.2", True), ("a_b-1@host.example.com", True), ("x@::1", True), ("n@host", False)],
)
def test_valid_names(text: str, long: bool) -> None:
    node = NodeName.parse(text)
    assert node.full == text and node.is_long is long
    assert NodeName.parse(text, long=long) == node


@pytest.mark.parametrize(
    "text",
    [
        "",
        "noat",
        "@host",
        "name@",
        "a@b@c",
        "na me@host",
        "n@-bad.example",
        "n@bad_host.x",
        "a" * 250 + "@h.example",
    ],
)
def test_invalid_names(text: str) -> None:
    with pytest.raises(NodeNameError):
        NodeName.parse(text)
    assert not is_node_name(text)


def test_long_and_short_rules() -> None:
    with pytest.raises(NodeNameError, match="long name"):
        NodeName.parse("n@host", long=True)
    with pytest.raises(NodeNameError, match="short name"):
        NodeName.parse("n@host.example", long=False)
    assert "." not in NodeName.short("n").host


@given(st.binary(max_size=60))
def test_parse_never_raises_anything_else(raw: bytes) -> None:
    with contextlib.suppress(NodeNameError):
        NodeName.parse(raw.decode("latin-1"))


def test_digest_matches_erlang() -> None:
    require_tool("erl")
    challenge = new_challenge()
    assert 0 <= challenge < 2**32
    out = subprocess.run(
        [
            "erl",
            "-noshell",
            "-eval",
            f'io:format("~s", [binary:encode_hex(erlang:md5(["Cookie1"|integer_to_list({challenge})]))]), halt().',
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert digest("Cookie1", challenge).hex().upper() == out


def test_cookie_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEAMLINK_COOKIE", "from_beamlink")
    monkeypatch.setenv("RELEASE_COOKIE", "from_release")
    assert resolve_cookie("arg", home=tmp_path) == "arg"
    assert resolve_cookie(home=tmp_path) == "from_beamlink"
    monkeypatch.delenv("BEAMLINK_COOKIE")
    assert resolve_cookie(home=tmp_path) == "from_release"
    monkeypatch.delenv("RELEASE_COOKIE")
    created = resolve_cookie(home=tmp_path)
    path = tmp_path / ".erlang.cookie"
    assert len(created) == 20 and created.isalpha() and created.isupper()
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    assert resolve_cookie(home=tmp_path) == created


def test_cookie_file_must_be_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BEAMLINK_COOKIE", raising=False)
    monkeypatch.delenv("RELEASE_COOKIE", raising=False)
    path = tmp_path / ".erlang.cookie"
    path.write_text("SECRET\n")
    os.chmod(path, 0o644)
    with pytest.raises(CookieError, match="owner"):
        resolve_cookie(home=tmp_path)
    os.chmod(path, 0o600)
    assert resolve_cookie(home=tmp_path) == "SECRET"


def test_erlang_reads_the_cookie_file_we_create(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_tool("erl")
    monkeypatch.delenv("BEAMLINK_COOKIE", raising=False)
    monkeypatch.delenv("RELEASE_COOKIE", raising=False)
    cookie = resolve_cookie(home=tmp_path)
    out = subprocess.run(
        [
            "erl",
            "-noshell",
            "-sname",
            "cookiecheck",
            "-start_epmd",
            "false",
            "-erl_epmd_port",
            "1",
            "-eval",
            'io:format("~s", [erlang:get_cookie()]), halt().',
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "HOME": str(tmp_path)},
    ).stdout
    assert out == cookie


def test_flag_sets() -> None:
    assert flags.MANDATORY_25 == 0x1070F94
    assert flags.MANDATORY == 0x403070F94
    assert flags.advertised_flags(hidden=False) & flags.PUBLISHED
    assert not flags.advertised_flags(hidden=True) & flags.PUBLISHED
    assert not flags.ADVERTISED & (flags.DIST_HDR_ATOM_CACHE | flags.NAME_ME)
    assert flags.missing_mandatory(flags.ADVERTISED) == 0
    assert flags.expand(flags.MANDATORY_25_DIGEST) & flags.MANDATORY_25 == flags.MANDATORY_25
    assert flags.flag_names(flags.V4_NC | 1 << 60) == ["V4_NC", "BIT60"]
