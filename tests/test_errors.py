"""The error tree: every public exception class beamlink defines derives from ``BeamlinkError``
through the right branch, and keeps the built-in base it had before the tree existed."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import beamlink
from beamlink import errors
from beamlink.errors import (
    BeamlinkError,
    ConfigurationError,
    EpmdError,
    NodeError,
    RemoteProtocolError,
)

# Every public exception class, its branch, and the built-in base it keeps (None: it had none).
EXPECTED: dict[str, tuple[type[BeamlinkError], type[Exception] | None]] = {
    "beamlink.cli.control.ControlError": (NodeError, RuntimeError),
    "beamlink.cli.runner.StartError": (NodeError, RuntimeError),
    "beamlink.cluster.address.AddressError": (ConfigurationError, RuntimeError),
    "beamlink.cluster.config.ConfigError": (ConfigurationError, ValueError),
    "beamlink.cluster.heartbeat.HeartbeatRejected": (RemoteProtocolError, ValueError),
    "beamlink.cluster.hosts_erlang.HostsFileError": (ConfigurationError, ValueError),
    "beamlink.cluster.strategies.base.DiscoveryError": (BeamlinkError, None),
    "beamlink.distribution.cookie.CookieError": (ConfigurationError, RuntimeError),
    "beamlink.distribution.frames.FrameError": (RemoteProtocolError, ValueError),
    "beamlink.distribution.handshake.HandshakeError": (RemoteProtocolError, None),
    "beamlink.distribution.names.NodeNameError": (ConfigurationError, ValueError),
    "beamlink.epmd.client.EpmdUnavailable": (EpmdError, None),
    "beamlink.epmd.client.NodeNotFound": (EpmdError, None),
    "beamlink.epmd.protocol.EpmdProtocolError": (RemoteProtocolError, ValueError),
    "beamlink.errors.NameInUse": (NodeError, None),
    "beamlink.etf.decoder.DecodeError": (RemoteProtocolError, ValueError),
    "beamlink.etf.text.TermSyntaxError": (ConfigurationError, ValueError),
    "beamlink.connection.optfile.OptfileError": (ConfigurationError, ValueError),
    "beamlink.connection.tls.TlsError": (RemoteProtocolError, None),
    "beamlink.etf.decoder.MemoryBudgetError": (RemoteProtocolError, ValueError),
    "beamlink.node.errors.NodeStartError": (NodeError, None),
    "beamlink.node.errors.ProcessExit": (NodeError, None),
    "beamlink.node.errors.ReceiveTimeout": (NodeError, TimeoutError),
    "beamlink.node.errors.UnknownName": (NodeError, LookupError),
    "beamlink.node.genserver.CallError": (NodeError, None),
    "beamlink.node.genserver.CallTimeout": (NodeError, TimeoutError),
    "beamlink.node.kernel.modules.Undefined": (NodeError, LookupError),
    "beamlink.node.rpc.ErlangException": (NodeError, None),
    "beamlink.node.rpc.NoConnection": (NodeError, None),
    "beamlink.node.rpc.RemoteDied": (NodeError, None),
    "beamlink.node.rpc.RemoteException": (NodeError, None),
    "beamlink.node.rpc.RpcError": (NodeError, None),
    "beamlink.node.rpc.RpcRefused": (NodeError, None),
    "beamlink.node.rpc.RpcTimeout": (NodeError, TimeoutError),
    "beamlink.settings.SettingsError": (ConfigurationError, ValueError),
}
BRANCHES = (RemoteProtocolError, ConfigurationError, NodeError, EpmdError)


def _public(name: str) -> bool:
    return not any(part.startswith("_") for part in name.split("."))


def defined_exceptions() -> dict[str, type[BaseException]]:
    """Every exception class defined (not just imported) in a public beamlink module."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(beamlink.__path__, "beamlink."):
        if not _public(info.name) or info.name == "beamlink.__main__":
            continue
        module = importlib.import_module(info.name)
        for attr, value in vars(module).items():
            if (inspect.isclass(value) and issubclass(value, BaseException)
                    and value.__module__ == module.__name__ and _public(attr)):
                found[f"{module.__name__}.{value.__qualname__}"] = value
    return found


def test_every_public_exception_is_in_the_tree() -> None:
    found = defined_exceptions()
    outside = sorted(name for name, cls in found.items() if not issubclass(cls, BeamlinkError))
    assert not outside, f"not derived from BeamlinkError: {outside}"
    tree = {f"beamlink.errors.{name}" for name in errors.__all__ if name != "NameInUse"}
    unlisted = sorted(set(found) - set(EXPECTED) - tree)
    assert not unlisted, f"add these to EXPECTED with their branch and built-in base: {unlisted}"
    assert set(EXPECTED) <= set(found)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_branch_and_builtin_base_are_kept(name: str) -> None:
    module, _, attr = name.rpartition(".")
    cls = getattr(importlib.import_module(module), attr)
    branch, builtin = EXPECTED[name]
    assert issubclass(cls, branch)
    if builtin is not None:
        assert issubclass(cls, builtin), f"{name} lost its built-in base {builtin.__name__}"


def test_branches_hang_off_the_root_and_keep_builtin_catches_working() -> None:
    for branch in BRANCHES:
        assert branch.__bases__ == (BeamlinkError,)
    from beamlink.etf import DecodeError, decode

    with pytest.raises(ValueError):
        decode(b"\x83\xff")
    with pytest.raises(RemoteProtocolError):
        decode(b"\x83\xff")
    assert issubclass(DecodeError, ValueError)


def test_one_name_in_use_class_for_the_registry_and_epmd() -> None:
    from beamlink.epmd import NameInUse as EpmdNameInUse
    from beamlink.node import NameInUse as NodeNameInUse

    assert EpmdNameInUse is NodeNameInUse is errors.NameInUse
    assert issubclass(errors.NameInUse, NodeError) and issubclass(errors.NameInUse, EpmdError)


def test_epmd_protocol_errors_are_still_epmd_errors() -> None:
    from beamlink.epmd import EpmdProtocolError

    assert issubclass(EpmdProtocolError, EpmdError)
