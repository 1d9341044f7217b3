"""Module resolution for RPC into Python: imports, dotted names, the allow-list, the erlang shim."""

from __future__ import annotations

import os.path
from dataclasses import dataclass, field

import pytest

from beamlink.etf import Atom, Pid, Reference
from beamlink.node.kernel.modules import ErlangShim, ModuleResolver, Undefined
from tests.rpc import sample_module


@dataclass
class StaticNode:
    """The two facts the shim reads, fixed."""

    name: Atom = field(default_factory=lambda: Atom("py@127.0.0.1"))
    peers: list[Atom] = field(default_factory=lambda: [Atom("a@127.0.0.1"), Atom("b@127.0.0.1")])

    def nodes(self) -> list[Atom]:
        return list(self.peers)


NODE = StaticNode()


def test_imports_dotted_module_names() -> None:
    fn = ModuleResolver().resolve("os.path", "join", NODE)
    assert fn is os.path.join


def test_registered_modules_come_before_imports() -> None:
    resolver = ModuleResolver(modules={"copy": sample_module})
    assert resolver.resolve("copy", "identity", NODE) is sample_module.identity


@pytest.mark.parametrize(
    ("module", "function"),
    [
        ("no_such_module_beamlink", "f"),
        ("os.no_such_sub", "f"),
        ("tests.rpc.sample_module", "no_such_function"),
        ("tests.rpc.sample_module", "CONSTANT"),
        ("tests.rpc.sample_module", "identity.__call__"),
        ("not a name", "f"),
        ("", "f"),
        ("os", ""),
        ("erlang", "__init__"),
    ],
)
def test_missing_or_bad_names_are_undefined(module: str, function: str) -> None:
    with pytest.raises(Undefined):
        ModuleResolver().resolve(module, function, NODE)


def test_import_errors_inside_a_module_are_not_undef(tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "beamlink_broken_mod.py"  # type: ignore[operator]
    pkg.write_text("import beamlink_dependency_that_does_not_exist\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError):
        ModuleResolver().resolve("beamlink_broken_mod", "f", NODE)


def test_allow_list_exact_and_wildcard() -> None:
    resolver = ModuleResolver(allow=["math", "tests.*"])
    assert resolver.allowed("math")
    assert resolver.allowed("tests")
    assert resolver.allowed("tests.rpc.sample_module")
    assert not resolver.allowed("os")
    assert not resolver.allowed("mathx")
    assert not resolver.allowed("testsuite")
    assert resolver.resolve("tests.rpc.sample_module", "add", NODE) is sample_module.add
    with pytest.raises(Undefined, match="allow-list"):
        resolver.resolve("os", "getcwd", NODE)


def test_allow_list_refuses_private_names() -> None:
    with pytest.raises(Undefined):
        ModuleResolver(allow=["tests.*"]).resolve("tests.rpc.sample_module", "_inner", NODE)
    assert ModuleResolver().resolve("tests.rpc.sample_module", "_inner", NODE) is sample_module._inner


def test_erlang_shim_is_reachable_under_any_allow_list() -> None:
    fn = ModuleResolver(allow=[]).resolve("erlang", "node", NODE)
    assert fn() == NODE.name


def test_erlang_shim_answers() -> None:
    caller = Pid(NODE.name, 7, 0, 1)
    shim = ErlangShim(NODE, caller)
    assert shim.node() == Atom("py@127.0.0.1")
    assert shim.node(Pid(Atom("x@h"), 1, 0, 2)) == Atom("x@h")
    assert shim.node(Reference(Atom("y@h"), 1, (1, 2, 3))) == Atom("y@h")
    assert shim.nodes() == NODE.peers
    assert shim.nodes(Atom("this")) == [NODE.name]
    assert shim.nodes([Atom("this"), Atom("visible")]) == [NODE.name, *NODE.peers]
    assert shim.nodes(Atom("hidden")) == []
    assert shim.is_alive() is True
    assert shim.self() == caller
    with pytest.raises(TypeError):
        shim.nodes(Atom("bogus"))
    with pytest.raises(TypeError):
        shim.node(42)  # type: ignore[arg-type]
