"""asyncio EPMD client: register a node (ALIVE2), look a node up (PORT_PLEASE2), list names (NAMES).

Only moves bytes and timers; the wire format lives in ``protocol.py``. Every call has a timeout.
The EPMD port is the ``epmd_port`` argument, else ``ERL_EPMD_PORT``, else 4369.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from beamlink.epmd.protocol import (
    DIST_VERSION_5,
    DIST_VERSION_6,
    NODE_TYPE_HIDDEN,
    NODE_TYPE_NORMAL,
    PROTOCOL_TCP_IPV4,
    RESULT_OK,
    Alive2Request,
    Alive2Response,
    NamesRequest,
    NamesResponse,
    NeedData,
    NodeAddress,
    Port2Response,
    PortPlease2Request,
    Request,
    Response,
    ResponseReader,
    encode_name,
    encode_request,
)
from beamlink.errors import EpmdError, NameInUse
from beamlink.settings import EPMD_PORT

__all__ = [
    "DEFAULT_TIMEOUT",
    "EpmdError",
    "EpmdUnavailable",
    "NameInUse",
    "NodeAddress",
    "NodeNotFound",
    "Registration",
    "default_epmd_port",
    "names",
    "port_please",
    "register",
]

log = logging.getLogger(__name__)

# Seconds allowed for connecting to EPMD and getting its answer.
DEFAULT_TIMEOUT = 5.0
_READ_CHUNK = 4096


class EpmdUnavailable(EpmdError):
    """No EPMD answered: connection refused, unreachable, or no answer in time."""


class NodeNotFound(EpmdError):
    """PORT_PLEASE2: EPMD knows no node of that name."""


def default_epmd_port() -> int:
    """``ERL_EPMD_PORT`` when set, else 4369; `SettingsError` outside 1..65535 (`beamlink.settings`)."""
    return int(EPMD_PORT.require().value)


async def _connect(
    host: str, epmd_port: int, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        return await asyncio.wait_for(asyncio.open_connection(host, epmd_port), timeout)
    except asyncio.TimeoutError:  # builtins.TimeoutError on 3.11+, distinct on 3.10
        raise EpmdUnavailable(
            f"EPMD at {host}:{epmd_port} did not accept a connection within {timeout} s"
        ) from None
    except OSError as exc:
        raise EpmdUnavailable(
            f"no EPMD at {host}:{epmd_port} ({exc.strerror or exc}): no node runs on that host "
            "yet (a starting node brings up EPMD within moments), or EPMD listens on another "
            "port (ERL_EPMD_PORT)"
        ) from exc


async def _read_response(reader: asyncio.StreamReader, request: Request) -> Response:
    parser = ResponseReader(request)
    while True:
        event = parser.next_event()
        if not isinstance(event, NeedData):
            return event
        data = await reader.read(_READ_CHUNK)
        if data:
            parser.feed(data)
        else:
            parser.feed_eof()


async def _exchange(
    host: str, epmd_port: int, request: Request, timeout: float
) -> tuple[Response, asyncio.StreamReader, asyncio.StreamWriter]:
    """Send ``request`` on a new connection and read the answer; the caller owns the writer."""
    reader, writer = await _connect(host, epmd_port, timeout)
    where = f"EPMD at {host}:{epmd_port}"
    try:
        writer.write(encode_request(request))
        response = await asyncio.wait_for(_read_response(reader, request), timeout)
    except asyncio.TimeoutError:  # builtins.TimeoutError on 3.11+, distinct on 3.10
        writer.close()
        raise EpmdUnavailable(f"{where} did not answer within {timeout} s") from None
    except (OSError, EpmdError) as exc:
        writer.close()
        if isinstance(exc, EpmdError):
            error = type(exc)(f"{where}: {exc}")
            error.__dict__.update(exc.__dict__)
            raise error from exc
        raise EpmdUnavailable(f"{where}: connection failed ({exc})") from exc
    return response, reader, writer


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


class Registration:
    """A live ALIVE2 registration: the node stays registered while this socket is open.

    ``wait_closed()`` returns once the registration is gone, whether through ``close()`` or
    because EPMD closed the socket (it exited, or it was an embedded EPMD whose owner exited).
    After that, register again (see ``beamlink.epmd.keeper``).
    """

    def __init__(
        self,
        node: NodeAddress,
        creation: int,
        host: str,
        epmd_port: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.node = node
        self.creation = creation
        self.host = host
        self.epmd_port = epmd_port
        self._writer = writer
        self._lost = asyncio.Event()
        self._watcher = asyncio.get_running_loop().create_task(
            self._watch(reader), name=f"epmd-registration-{node.name}"
        )

    @property
    def name(self) -> str:
        """The registered name (the part before ``@``)."""
        return self.node.name

    @property
    def closed(self) -> bool:
        """True once the registration is gone."""
        return self._lost.is_set()

    async def _watch(self, reader: asyncio.StreamReader) -> None:
        try:
            data = await reader.read(_READ_CHUNK)
        except OSError as exc:
            log.warning("EPMD registration of %r lost: %s", self.name, exc)
        else:
            if data:
                log.warning(
                    "EPMD at %s:%d sent %d unexpected bytes on the registration of %r; dropping it",
                    self.host, self.epmd_port, len(data), self.name,
                )
            else:
                log.warning(
                    "EPMD at %s:%d closed the registration of %r",
                    self.host, self.epmd_port, self.name,
                )
        await self._finish()

    async def _finish(self) -> None:
        if not self._lost.is_set():
            self._lost.set()
            await _close_writer(self._writer)

    async def wait_closed(self) -> None:
        """Return once the registration is gone (closed by us or by EPMD)."""
        await self._lost.wait()

    async def close(self) -> None:
        """Unregister by closing the registration socket. Idempotent."""
        self._watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._watcher
        await self._finish()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (
            f"<Registration {self.name!r} port={self.node.port} creation={self.creation} "
            f"epmd={self.host}:{self.epmd_port} {state}>"
        )


async def register(
    name: str,
    port: int,
    *,
    hidden: bool = False,
    host: str = "127.0.0.1",
    epmd_port: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    highest_version: int = DIST_VERSION_6,
    lowest_version: int = DIST_VERSION_5,
    extra: bytes = b"",
) -> Registration:
    """Register node ``name`` (the part before ``@``) listening on ``port`` with EPMD.

    Raises ``NameInUse`` when EPMD refuses (the name is registered by a live node),
    ``EpmdUnavailable`` when no EPMD answers, ``EpmdProtocolError`` on a garbled answer.
    """
    encode_name(name)
    epmd_port = default_epmd_port() if epmd_port is None else epmd_port
    node = NodeAddress(
        port=port,
        node_type=NODE_TYPE_HIDDEN if hidden else NODE_TYPE_NORMAL,
        protocol=PROTOCOL_TCP_IPV4,
        highest_version=highest_version,
        lowest_version=lowest_version,
        name=name,
        extra=extra,
    )
    response, reader, writer = await _exchange(host, epmd_port, Alive2Request(node), timeout)
    assert isinstance(response, Alive2Response)
    if response.result != RESULT_OK:
        await _close_writer(writer)
        raise NameInUse(
            f"EPMD at {host}:{epmd_port} refused to register {name!r} (result "
            f"{response.result}): a live node already uses that name; stop it or pick another name"
        )
    return Registration(node, response.creation, host, epmd_port, reader, writer)


async def port_please(
    host: str, name: str, *, epmd_port: int | None = None, timeout: float = DEFAULT_TIMEOUT
) -> NodeAddress:
    """Ask the EPMD on ``host`` where node ``name`` (the part before ``@``) listens.

    Raises ``NodeNotFound`` when that EPMD has no such node, ``EpmdUnavailable`` when no EPMD
    answers.
    """
    encode_name(name)
    epmd_port = default_epmd_port() if epmd_port is None else epmd_port
    response, _, writer = await _exchange(host, epmd_port, PortPlease2Request(name), timeout)
    await _close_writer(writer)
    assert isinstance(response, Port2Response)
    if response.node is None:
        raise NodeNotFound(
            f"EPMD at {host}:{epmd_port} has no node named {name!r} (result {response.result})"
        )
    return response.node


async def names(
    host: str = "127.0.0.1", *, epmd_port: int | None = None, timeout: float = DEFAULT_TIMEOUT
) -> list[tuple[str, int]]:
    """The ``(name, port)`` pairs registered with the EPMD on ``host``."""
    epmd_port = default_epmd_port() if epmd_port is None else epmd_port
    response, _, writer = await _exchange(host, epmd_port, NamesRequest(), timeout)
    await _close_writer(writer)
    assert isinstance(response, NamesResponse)
    return list(response.nodes)
