"""Settings defined once (``beamlink.settings``): precedence argument > BEAMLINK_* > RELEASE_*/ERL_*
> default, and range errors that name the variable and what is accepted; the node, the cookie
resolution, the EPMD client and the connection layer read these same definitions."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beamlink import settings
from beamlink.errors import ConfigurationError
from beamlink.settings import EnvSetting, Setting, SettingsError

PORT_SETTINGS = [
    (settings.DIST_PORT, "ERL_DIST_PORT", 1),
    (settings.EPMD_PORT, "ERL_EPMD_PORT", 1),
    (settings.METRICS_PORT, "BEAMLINK_METRICS_PORT", 0),
    (settings.DASHBOARD_PORT, "BEAMLINK_DASHBOARD_PORT", 0),
]
TEXT_SETTINGS = [
    (settings.COOKIE, ("BEAMLINK_COOKIE", "RELEASE_COOKIE")),
    (settings.NODE_NAME, ("BEAMLINK_NODE", "RELEASE_NODE")),
    (settings.CONFIG, ("BEAMLINK_CONFIG",)),
    (settings.APP, ("BEAMLINK_APP",)),
    (settings.METRICS_HOST, ("BEAMLINK_METRICS_HOST",)),
    (settings.DASHBOARD_HOST, ("BEAMLINK_DASHBOARD_HOST",)),
]


def test_settings_errors_are_configuration_and_value_errors() -> None:
    assert issubclass(SettingsError, ConfigurationError)
    assert issubclass(SettingsError, ValueError)


@pytest.mark.parametrize(("setting", "variables"), TEXT_SETTINGS)
def test_text_precedence(setting: EnvSetting[str], variables: tuple[str, ...]) -> None:
    env = {var: f"from-{var}" for var in variables}
    assert setting.lookup("explicit", env=env, source="--opt") == Setting("explicit", "--opt")
    for i, var in enumerate(variables):
        remaining = {v: env[v] for v in variables[i:]}
        assert setting.lookup(env=remaining) == Setting(f"from-{var}", f"env {var}")
        assert setting.lookup("", env=remaining) == Setting(f"from-{var}", f"env {var}")
    assert setting.lookup(env={variables[0]: "   "}) == setting.lookup(env={})
    assert setting.get(env={}) == setting.default


@pytest.mark.parametrize(("setting", "variable", "low"), PORT_SETTINGS)
def test_port_precedence_and_range(setting: EnvSetting[int], variable: str, low: int) -> None:
    assert setting.lookup(env={variable: " 9100 "}) == Setting(9100, f"env {variable}")
    assert setting.lookup(9200, env={variable: "9100"}) == Setting(9200, "argument")
    assert setting.get(env={variable: str(low)}) == low
    assert setting.get(env={variable: "65535"}) == 65535
    for bad in (str(low - 1), "65536", "port", "12.5", "0x10", "٣"):
        with pytest.raises(SettingsError) as err:
            setting.get(env={variable: bad})
        assert f"env {variable}" in str(err.value)
        assert f"{low}..65535" in str(err.value)
    for bad_arg in (low - 1, 65536, True, 9100.0):
        with pytest.raises(SettingsError, match=f"from argument must be a port number {low}"):
            setting.get(bad_arg, env={})


@given(st.text())
def test_port_parser_never_accepts_text_outside_the_range(text: str) -> None:
    try:
        port = settings.DIST_PORT.get(env={"ERL_DIST_PORT": text})
    except SettingsError:
        return
    assert (port is None and not text.strip()) or (port is not None and 1 <= port <= 65535)


def test_epmd_port_defaults_to_4369() -> None:
    assert settings.EPMD_PORT.lookup(env={}) == Setting(4369, "default")
    assert settings.DIST_PORT.lookup(env={}) is None


def test_net_ticktime_default_env_and_range() -> None:
    assert settings.NET_TICKTIME.lookup(env={}) == Setting(60.0, "default")
    assert settings.NET_TICKTIME.get(env={"BEAMLINK_NET_TICKTIME": "7.5"}) == 7.5
    assert settings.NET_TICKTIME.get(3, env={"BEAMLINK_NET_TICKTIME": "7.5"}) == 3.0
    for bad in ("0", "-1", "nan", "inf", "soon"):
        with pytest.raises(SettingsError, match="env BEAMLINK_NET_TICKTIME must be a number of "
                                                "seconds greater than 0"):
            settings.NET_TICKTIME.get(env={"BEAMLINK_NET_TICKTIME": bad})


def test_distribution_choices() -> None:
    assert settings.DISTRIBUTION.lookup(env={}) == Setting("name", "default")
    assert settings.DISTRIBUTION.get(env={"RELEASE_DISTRIBUTION": "sname"}) == "sname"
    with pytest.raises(SettingsError, match="RELEASE_DISTRIBUTION must be name, sname or none"):
        settings.DISTRIBUTION.get(env={"RELEASE_DISTRIBUTION": "longnames"})


def test_cookie_must_be_latin1_and_atom_sized() -> None:
    assert settings.COOKIE.get(env={"RELEASE_COOKIE": "ÿes"}) == "ÿes"
    with pytest.raises(SettingsError, match="env BEAMLINK_COOKIE must be latin-1 text"):
        settings.COOKIE.get(env={"BEAMLINK_COOKIE": "snow☃"})
    with pytest.raises(SettingsError, match="at most 255 characters"):
        settings.COOKIE.get("c" * 256)


def test_require_says_how_to_set_a_missing_value() -> None:
    with pytest.raises(SettingsError, match="no node name: pass one or set BEAMLINK_NODE or "
                                            "RELEASE_NODE"):
        settings.NODE_NAME.require(env={})


# The users: each reads the definitions above from the process environment.

def test_cookie_resolution_uses_the_cookie_setting(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    from beamlink.distribution.cookie import resolve_cookie

    monkeypatch.setenv("RELEASE_COOKIE", "rel")
    monkeypatch.setenv("BEAMLINK_COOKIE", "bl")
    assert resolve_cookie("arg", home=tmp_path) == "arg"
    assert resolve_cookie(home=tmp_path) == "bl"
    monkeypatch.setenv("BEAMLINK_COOKIE", "x" * 300)
    with pytest.raises(SettingsError, match="cookie from env BEAMLINK_COOKIE"):
        resolve_cookie(home=tmp_path)
    assert not (tmp_path / ".erlang.cookie").exists()


def test_epmd_client_port_uses_the_epmd_port_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from beamlink.epmd import default_epmd_port

    monkeypatch.delenv("ERL_EPMD_PORT", raising=False)
    assert default_epmd_port() == 4369
    monkeypatch.setenv("ERL_EPMD_PORT", "4370")
    assert default_epmd_port() == 4370
    monkeypatch.setenv("ERL_EPMD_PORT", "70000")
    with pytest.raises(SettingsError, match=r"EPMD port from env ERL_EPMD_PORT must be a port "
                                            r"number 1\.\.65535, got '70000'"):
        default_epmd_port()


async def test_epmd_client_calls_check_the_port_before_dialling(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from beamlink.epmd import names

    monkeypatch.setenv("ERL_EPMD_PORT", "0")
    with pytest.raises(SettingsError, match="ERL_EPMD_PORT"):
        await names("127.0.0.1", timeout=1.0)


def test_one_default_net_ticktime() -> None:
    from beamlink.cli import settings as cli_settings
    from beamlink.connection import DEFAULT_NET_TICKTIME

    assert DEFAULT_NET_TICKTIME is settings.DEFAULT_NET_TICKTIME
    assert cli_settings.node_settings({}, {})["net_ticktime"] == Setting(60.0, "default")


async def test_node_start_reports_bad_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from beamlink.node import Node

    monkeypatch.setenv("ERL_DIST_PORT", "99999")
    with pytest.raises(SettingsError, match="ERL_DIST_PORT"):
        await Node.start("bad_env@127.0.0.1", "cookie", listen=False)
    monkeypatch.delenv("ERL_DIST_PORT")
    monkeypatch.setenv("BEAMLINK_NODE", "no spaces allowed")
    with pytest.raises(SettingsError, match="node name from env BEAMLINK_NODE"):
        await Node.start(cookie="cookie", listen=False)
