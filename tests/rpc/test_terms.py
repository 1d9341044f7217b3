"""The erpc/rpc result terms both ways: what a Python call exits with, how a DOWN reason reads."""

from __future__ import annotations

from typing import Any

import pytest

from beamlink.etf import Atom, Charlist, Reference
from beamlink.node.kernel.modules import ModuleResolver
from beamlink.node.kernel.rex import apply, erpc_exit_reason, rpc_reply
from beamlink.node.rpc import (
    ErlangException,
    NoConnection,
    RemoteDied,
    RemoteException,
    RpcRefused,
    erpc_result,
)
from beamlink.node.runtime import Executor, exception_reason
from tests.rpc.test_modules import NODE

A = Atom
M = A("tests.rpc.sample_module")
RES = Reference(A("py@127.0.0.1"), 1, (1, 2, 3))
EXECUTOR = Executor(workers=2)  # sync functions run in its threads, as on a node


async def run(function: str, args: list[Any], module: Any = M) -> Any:
    return await apply(ModuleResolver(), NODE, None, module, A(function), args, EXECUTOR)


async def test_return_value_and_coroutines() -> None:
    assert await run("add", [1, 2]) == (A("return"), 3)
    assert await run("slow_add", [1, 2]) == (A("return"), 3)
    assert erpc_exit_reason(RES, (A("return"), 3)) == (RES, A("return"), 3)


async def test_python_exception_maps_to_error_with_stack() -> None:
    outcome = await run("fail", [b"bad value"])
    assert outcome[0] == A("error")
    assert outcome[1] == (A("python_exception"), b"ValueError", b"bad value")
    stack = outcome[2]
    assert stack[0][0] == M and stack[0][1] == A("fail") and stack[0][2] == 1
    location = dict(stack[0][3])
    assert isinstance(location[A("file")], Charlist) and location[A("file")].endswith("sample_module.py")
    assert isinstance(location[A("line")], int)


async def test_stack_is_innermost_first() -> None:
    outcome = await run("nested_fail", [])
    assert outcome[1] == (A("python_exception"), b"KeyError", b"'missing'")
    assert [frame[1] for frame in outcome[2]] == [A("_inner"), A("nested_fail")]


async def test_wrong_arity_is_a_type_error() -> None:
    outcome = await run("add", [1])
    assert outcome[1][:2] == (A("python_exception"), b"TypeError")


async def test_undefined_function_is_undef_like_erlang() -> None:
    outcome = await run("nope", [1, 2])
    assert outcome == (A("error"), A("undef"), [(M, A("nope"), [1, 2], [])])
    outcome = await run("f", [], module=A("beamlink_no_such_module"))
    assert outcome[1] == A("undef")


async def test_bad_arguments_are_erpc_badarg() -> None:
    assert await run("add", (1, 2)) == (A("error"), (A("erpc"), A("badarg")))  # type: ignore[arg-type]
    assert await run("add", [1, 2], module=b"mod") == (A("error"), (A("erpc"), A("badarg")))


async def test_erlang_exception_classes() -> None:
    assert await run("throw", [A("oops")]) == (A("throw"), A("oops"))
    assert await run("exit_with", [A("shutdown")]) == (A("exit"), A("shutdown"))


async def test_unencodable_result_is_reported() -> None:
    outcome = await run("unencodable", [])
    assert outcome[1][:2] == (A("python_exception"), b"TypeError")


async def test_system_exit_does_not_escape() -> None:
    outcome = await run("sys_exit", [])
    assert outcome[1] == (A("python_exception"), b"SystemExit", b"3")


def test_exception_type_names() -> None:
    class Local(Exception):
        pass

    assert exception_reason(Local("x"))[1].endswith(b"test_exception_type_names.<locals>.Local")
    assert exception_reason(Local("x"))[1].startswith(b"tests.rpc.test_terms.")


def test_rpc_reply_matches_rpc_erl() -> None:
    assert rpc_reply((A("return"), 5)) == 5
    assert rpc_reply((A("throw"), A("t"))) == A("t")
    assert rpc_reply((A("exit"), A("r"))) == (A("badrpc"), (A("EXIT"), A("r")))
    assert rpc_reply((A("error"), A("undef"), [])) == (A("badrpc"), (A("EXIT"), (A("undef"), [])))
    assert rpc_reply((A("error"), (A("erpc"), A("badarg")))) == (
        A("badrpc"), (A("EXIT"), (A("erpc"), A("badarg")))
    )


def test_erpc_result_reads_every_outcome() -> None:
    assert erpc_result(RES, (RES, A("return"), [1])) == [1]
    with pytest.raises(RemoteException) as info:
        erpc_result(RES, (RES, A("throw"), A("t")))
    assert (info.value.class_, info.value.reason, info.value.stack) == (A("throw"), A("t"), [])
    with pytest.raises(RemoteException) as info:
        erpc_result(RES, (RES, A("exit"), A("r")))
    assert info.value.class_ == A("exit")
    with pytest.raises(RemoteException) as info:
        erpc_result(RES, (RES, A("error"), A("badarith"), [(A("m"), A("f"), 0, [])]))
    assert info.value.stack == [(A("m"), A("f"), 0, [])]
    with pytest.raises(RpcRefused) as refused:
        erpc_result(RES, (RES, A("error"), (A("erpc"), A("system_limit"))))
    assert refused.value.reason == A("system_limit")
    with pytest.raises(NoConnection):
        erpc_result(RES, A("noconnection"))
    with pytest.raises(RemoteDied) as died:
        erpc_result(RES, A("killed"))
    assert died.value.reason == A("killed")
    other = Reference(A("py@127.0.0.1"), 1, (9, 9, 9))
    with pytest.raises(RemoteDied):
        erpc_result(RES, (other, A("return"), 1))


def test_remote_exception_is_an_erlang_exception() -> None:
    exc = RemoteException(A("error"), A("badarg"), [])
    assert isinstance(exc, ErlangException)
    assert "badarg" in str(exc)
    with pytest.raises(ValueError):
        ErlangException(A("oops"), 1)


async def test_argument_lists_that_travel_as_strings() -> None:
    assert await run("add", Charlist("\x01\x02")) == (A("return"), 3)  # type: ignore[arg-type]
