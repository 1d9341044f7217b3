"""Effective CLI settings: precedence of options, BEAMLINK_* and RELEASE_* variables, sources;
every option backed by a variable names it in ``--help``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from beamlink.cli.main import ENV_OPTIONS, EnvOption, cli
from beamlink.cli.settings import SettingsError, describe, node_settings
from tests.cli.support import beamlink, cli_env

NONE = {"name": None, "sname": None, "cookie": None, "dist_port": None, "net_ticktime": None,
        "config": None, "app": None, "hidden": False}


def opts(**kw: object) -> dict[str, object]:
    return {**NONE, **kw}


def test_option_beats_beamlink_env_beats_release_env() -> None:
    env = {"BEAMLINK_NODE": "b@h", "RELEASE_NODE": "r@h", "BEAMLINK_COOKIE": "bc",
           "RELEASE_COOKIE": "rc", "HOME": "/nonexistent"}
    s = node_settings(opts(name="o@h"), env)
    assert (s["name"].value, s["name"].source) == ("o@h", "--name")
    assert (s["cookie"].value, s["cookie"].source) == ("bc", "env BEAMLINK_COOKIE")
    s = node_settings(opts(), {k: v for k, v in env.items() if not k.startswith("BEAMLINK")})
    assert (s["name"].value, s["name"].source) == ("r@h", "env RELEASE_NODE")
    assert (s["cookie"].value, s["cookie"].source) == ("rc", "env RELEASE_COOKIE")


def test_cookie_falls_back_to_the_cookie_file() -> None:
    s = node_settings(opts(name="a@h"), {"HOME": "/home/x"})
    assert s["cookie"].value is None
    assert s["cookie"].source == "file /home/x/.erlang.cookie"


def test_release_distribution_sname_and_validation() -> None:
    s = node_settings(opts(), {"RELEASE_NODE": "app", "RELEASE_DISTRIBUTION": "sname"})
    assert (s["distribution"].value, s["distribution"].source) == ("sname", "env RELEASE_DISTRIBUTION")
    s = node_settings(opts(sname="app"), {})
    assert (s["distribution"].value, s["distribution"].source) == ("sname", "--sname")
    assert node_settings(opts(name="a@h"), {})["distribution"].value == "name"
    with pytest.raises(SettingsError, match="RELEASE_DISTRIBUTION"):
        node_settings(opts(), {"RELEASE_DISTRIBUTION": "longnames"})
    with pytest.raises(SettingsError, match="either --name or --sname"):
        node_settings(opts(name="a@h", sname="a"), {})


def test_numbers_are_checked_and_name_their_source() -> None:
    s = node_settings(opts(), {"ERL_DIST_PORT": "9100", "ERL_EPMD_PORT": "4370"})
    assert s["dist_port"].value == 9100 and s["dist_port"].source == "env ERL_DIST_PORT"
    assert s["epmd_port"].value == 4370
    assert s["net_ticktime"].value == 60.0 and s["net_ticktime"].source == "default"
    with pytest.raises(SettingsError, match="ERL_DIST_PORT"):
        node_settings(opts(), {"ERL_DIST_PORT": "lots"})


def test_worker_pool_sizes_from_option_env_or_default() -> None:
    s = node_settings(opts(), {})
    assert (s["workers"].value, s["processes"].value) == (64, 0)
    s = node_settings(opts(workers=8), {"BEAMLINK_WORKERS": "16", "BEAMLINK_PROCESSES": "2"})
    assert (s["workers"].value, s["workers"].source) == (8, "--workers")
    assert (s["processes"].value, s["processes"].source) == (2, "env BEAMLINK_PROCESSES")
    with pytest.raises(SettingsError, match="worker threads from env BEAMLINK_WORKERS"):
        node_settings(opts(), {"BEAMLINK_WORKERS": "0"})
    with pytest.raises(SettingsError, match="worker processes from --processes"):
        node_settings(opts(processes=-1), {})


def test_stall_threshold_from_option_env_or_default() -> None:
    assert node_settings(opts(), {})["stall_threshold"].value == 0.1
    s = node_settings(opts(), {"BEAMLINK_STALL_THRESHOLD": "0.25"})
    assert (s["stall_threshold"].value, s["stall_threshold"].source) == (
        0.25, "env BEAMLINK_STALL_THRESHOLD"
    )
    s = node_settings(opts(stall_threshold=2.0), {"BEAMLINK_STALL_THRESHOLD": "0.25"})
    assert (s["stall_threshold"].value, s["stall_threshold"].source) == (2.0, "--stall-threshold")
    with pytest.raises(SettingsError, match="stall threshold from env BEAMLINK_STALL_THRESHOLD"):
        node_settings(opts(), {"BEAMLINK_STALL_THRESHOLD": "0"})


def test_describe_never_prints_the_cookie() -> None:
    lines = describe(node_settings(opts(name="a@h", cookie="supersecret"), {}))
    assert not any("supersecret" in line for line in lines)
    assert "name = a@h  (--name)" in lines


def test_env_values_are_range_checked_with_their_source() -> None:
    for env, message in (
        ({"ERL_DIST_PORT": "70000"}, "distribution port from env ERL_DIST_PORT must be a port "
                                     "number 1..65535, got '70000'"),
        ({"ERL_EPMD_PORT": "0"}, "EPMD port from env ERL_EPMD_PORT must be a port number "
                                 "1..65535, got '0'"),
        ({"BEAMLINK_NET_TICKTIME": "-5"}, "net_ticktime from env BEAMLINK_NET_TICKTIME must be a "
                                          "number of seconds greater than 0, got '-5'"),
        ({"BEAMLINK_METRICS_PORT": "65536"}, "metrics port from env BEAMLINK_METRICS_PORT must be "
                                             "a port number 0..65535"),
    ):
        with pytest.raises(SettingsError) as err:
            node_settings(opts(name="a@h"), env)
        assert message in str(err.value)
    with pytest.raises(SettingsError, match=r"from --dist-port must be a port number 1\.\.65535"):
        node_settings(opts(name="a@h", dist_port=0), {"ERL_DIST_PORT": "9100"})


def test_cli_reports_a_bad_environment_value(tmp_path: Path) -> None:
    """A bad variable ends each kind of command with one clear line naming it (no traceback)."""
    start = beamlink("start", "--name", "bad_env@127.0.0.1",
                     env=cli_env(tmp_path, ERL_DIST_PORT="70000"))
    assert start.returncode == 2
    assert ("distribution port from env ERL_DIST_PORT must be a port number 1..65535, "
            "got '70000'") in start.stderr
    ping = beamlink("ping", "x@127.0.0.1", "--timeout", "2",
                    env=cli_env(tmp_path, ERL_DIST_PORT="fast"))
    assert ping.returncode == 1
    assert ping.stderr.strip() == (
        "beamlink: cannot start a control node: distribution port from env ERL_DIST_PORT must "
        "be a port number 1..65535, got 'fast'"
    )
    demo = beamlink("demo", "--no-erlang", env=cli_env(tmp_path, ERL_EPMD_PORT="99999"))
    assert demo.returncode == 1
    assert "EPMD port from env ERL_EPMD_PORT must be a port number 1..65535, got '99999'" in (
        demo.stderr)
    for result in (start, ping, demo):
        assert "Traceback" not in result.stderr


def _commands(group: click.Group) -> Iterator[click.Command]:
    for command in group.commands.values():
        yield command
        if isinstance(command, click.Group):
            yield from _commands(command)


def test_every_env_backed_option_names_its_variables_in_help() -> None:
    checked = 0
    for command in _commands(cli):
        for param in command.params:
            setting = ENV_OPTIONS.get(param.name or "")
            if not isinstance(param, click.Option) or setting is None:
                continue
            assert isinstance(param, EnvOption), f"{command.name} --{param.name} is not an EnvOption"
            for variable in setting.variables:
                assert variable in (param.help or ""), f"{command.name} --{param.name}: {variable}"
            checked += 1
    assert checked >= 20  # start and config (8 each), the control commands' --cookie


def test_help_output_shows_the_variables() -> None:
    out = CliRunner().invoke(cli, ["start", "--help"]).output
    for variable in ("BEAMLINK_NET_TICKTIME", "BEAMLINK_CONFIG", "ERL_DIST_PORT"):
        assert variable in out
