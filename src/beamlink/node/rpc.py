"""RPC from Python to any node (BEAM or beamlink), done the way ``erpc:call``/``erpc:cast`` do it.

``await call(node, peer, module, function, args, timeout=...)`` sends a SPAWN_REQUEST for
``erpc:execute_call(Ref, M, F, A)`` with a monitor; the remote process exits with
``{Ref, return, Value}`` (or ``{Ref, throw | exit, R}`` / ``{Ref, error, R, Stack}``) and that exit
reason comes back in the DOWN message of the monitor. Nothing is registered on the remote node and
no reply message is needed, exactly as with OTP's own ``erpc``.

Errors are typed: :class:`RemoteException` (the applied function raised; ``class_``, ``reason``,
``stack``), :class:`RpcTimeout`, :class:`NoConnection`, :class:`RpcRefused` (the remote node would
not spawn: ``notsup``, ``badarg``, ``system_limit``...) and :class:`RemoteDied` (the process running
the call was killed by an exit signal). All derive from :class:`RpcError`.

Each call runs in a short-lived caller-driven process (``node.new_process()``): it owns the
monitor, receives the answer and exits, so nothing outlives the call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from beamlink.errors import NodeError
from beamlink.etf import Atom, Reference
from beamlink.node.atoms import DOWN_TAG, ERROR, NOCONNECTION, OK, SPAWN_REPLY_TAG
from beamlink.node.errors import ReceiveTimeout

ERPC = Atom("erpc")
EXECUTE_CALL = Atom("execute_call")
EXECUTE_CAST = Atom("execute_cast")

RETURN = Atom("return")
THROW = Atom("throw")
EXIT = Atom("exit")
EXCEPTION_CLASSES = (THROW, EXIT, ERROR)


class ErlangException(NodeError):
    """An Erlang exception: class ``throw``, ``exit`` or ``error`` with any reason term.

    Python code called over RPC may raise it to choose the class and reason Erlang sees
    (``raise ErlangException(Atom("throw"), term)`` makes ``rpc:call`` return ``term``).
    """

    def __init__(self, class_: Atom, reason: Any, stack: Sequence[Any] = ()) -> None:
        if class_ not in EXCEPTION_CLASSES:
            raise ValueError(f"exception class must be throw, exit or error, not {class_!r}")
        super().__init__(class_, reason)
        self.class_ = class_
        self.reason = reason
        self.stack = list(stack)

    def __str__(self) -> str:
        return f"{self.class_}:{self.reason!r}"


class RpcError(NodeError):
    """An RPC did not return a value. ``reason`` is the Erlang term that says why."""

    def __init__(self, reason: Any, message: str | None = None) -> None:
        super().__init__(message or f"rpc failed: {reason!r}")
        self.reason = reason


class RemoteException(RpcError, ErlangException):
    """The applied function raised ``class_:reason`` (``stack`` is empty for throw and exit).

    Raising it again from Python code serving an RPC passes the same exception on unchanged.
    """

    def __init__(self, class_: Atom, reason: Any, stack: Sequence[Any] = ()) -> None:
        ErlangException.__init__(self, class_, reason, stack)
        self.args = (f"remote {class_}: {reason!r}",)

    def __str__(self) -> str:
        return str(self.args[0])


class RpcTimeout(RpcError, TimeoutError):
    """No answer within the timeout; the function may or may not have been applied."""


class NoConnection(RpcError):
    """The node could not be reached or the connection was lost during the call."""


class RpcRefused(RpcError):
    """The remote node refused to run the call (``notsup``, ``badarg``, ``system_limit``...)."""


class RemoteDied(RpcError):
    """The process applying the function was killed by an exit signal with ``reason``."""


def erpc_result(res: Reference, reason: Any) -> Any:
    """Interpret the exit reason of an ``erpc:execute_call`` process (its DOWN reason).

    Returns the value, or raises the typed error ``erpc:call`` would turn into an exception.
    """
    if isinstance(reason, tuple) and len(reason) >= 3 and reason[0] == res:
        kind = reason[1]
        if len(reason) == 3:
            if kind == RETURN:
                return reason[2]
            if kind in (THROW, EXIT):
                raise RemoteException(kind, reason[2])
            if kind == ERROR and _is_erpc_error(reason[2]):
                raise RpcRefused(reason[2][1])
        elif len(reason) == 4 and kind == ERROR:
            stack = reason[3] if isinstance(reason[3], list) else []
            raise RemoteException(ERROR, reason[2], stack)
    if reason == NOCONNECTION:
        raise NoConnection(reason, "connection lost during the rpc")
    raise RemoteDied(reason, f"the rpc process was killed: {reason!r}")


def _is_erpc_error(term: Any) -> bool:
    return isinstance(term, tuple) and len(term) == 2 and term[0] == ERPC


async def call(
    node: Any,
    peer: Atom | str,
    module: Atom | str,
    function: Atom | str,
    args: Sequence[Any] = (),
    *,
    timeout: float | None = None,
) -> Any:
    """Apply ``module:function(*args)`` on node ``peer`` and return the value (like ``erpc:call``).

    ``timeout`` is in seconds (``None``: wait for ever). Raises :class:`RemoteException`,
    :class:`RpcTimeout`, :class:`NoConnection`, :class:`RpcRefused` or :class:`RemoteDied`.
    """
    res = node.make_ref()
    mfa = [res, Atom(module), Atom(function), list(args)]
    with node.new_process() as proc:
        req = proc.spawn_request(Atom(peer), ERPC, EXECUTE_CALL, mfa, monitor=True)

        def answer(msg: Any) -> bool:
            return (
                type(msg) is tuple
                and len(msg) in (4, 5)
                and msg[1] == req
                and (msg[0] == DOWN_TAG or (msg[0] == SPAWN_REPLY_TAG and msg[2] != OK))
            )

        try:
            msg = await proc.receive(answer, timeout)
        except ReceiveTimeout:
            proc.demonitor(req, flush=True)
            raise RpcTimeout(Atom("timeout"), f"rpc {module}:{function} timed out") from None
    if msg[0] == SPAWN_REPLY_TAG:
        if msg[3] == NOCONNECTION:
            raise NoConnection(msg[3], f"cannot reach {peer}")
        raise RpcRefused(msg[3], f"{peer} refused the rpc: {msg[3]!r}")
    return erpc_result(res, msg[4])


def cast(
    node: Any, peer: Atom | str, module: Atom | str, function: Atom | str, args: Sequence[Any] = ()
) -> None:
    """Apply ``module:function(*args)`` on ``peer`` without waiting (like ``erpc:cast``).

    Failures, including an unreachable node, are silently ignored.
    """
    with node.new_process() as proc:
        proc.spawn_request(Atom(peer), ERPC, EXECUTE_CAST, [Atom(module), Atom(function), list(args)])
