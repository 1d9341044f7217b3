"""Keep a node registered with EPMD, taking over the embedded EPMD when its owner exits.

The recommended loop for a node (what ``keep_registered`` runs as a task):

1. ``server = await ensure_epmd(...)``: use the EPMD that answers, or become its owner;
2. ``registration = await register(name, port, ...)``: the creation goes into every pid/ref;
3. ``await registration.wait_closed()``: returns when EPMD drops the socket. That happens when
   the embedded EPMD's owner process exits (or a system ``epmd`` restarts);
4. go back to 1. Among the local nodes that lost their registration, one wins the bind of the
   EPMD port and the others register with it. EPMD assigns a new creation, reported to
   ``on_change``.

Erlang nodes registered with an embedded EPMD whose owner exits are not re-registered (OTP's
``erl_epmd`` does not retry): other nodes cannot look them up until they restart distribution.
Run a system ``epmd`` when Erlang nodes share the host.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from beamlink.epmd.client import DEFAULT_TIMEOUT, Registration, register
from beamlink.epmd.server import EmbeddedEpmd, ensure_epmd
from beamlink.errors import EpmdError

__all__ = ["KeptRegistration", "keep_registered"]

log = logging.getLogger(__name__)

_MAX_RETRY_INTERVAL = 2.0


class KeptRegistration:
    """A registration that is renewed whenever EPMD drops it; made by ``keep_registered``."""

    def __init__(
        self,
        name: str,
        port: int,
        *,
        hidden: bool,
        host: str,
        epmd_port: int | None,
        addresses: Sequence[str] | None,
        on_change: Callable[[int], None] | None,
        retry_interval: float,
        timeout: float,
    ) -> None:
        self.name = name
        self.port = port
        self._hidden = hidden
        self._host = host
        self._epmd_port = epmd_port
        self._addresses = addresses
        self._on_change = on_change
        self._retry_interval = retry_interval
        self._timeout = timeout
        self._registration: Registration | None = None
        self._embedded: EmbeddedEpmd | None = None
        self._task: asyncio.Task[None] | None = None
        self._registered = asyncio.Event()
        self._closing = False

    @property
    def creation(self) -> int | None:
        """The creation of the current registration; None while re-registering."""
        registration = self._registration
        return None if registration is None or registration.closed else registration.creation

    @property
    def embedded(self) -> EmbeddedEpmd | None:
        """The embedded EPMD this process runs, if it had to start one."""
        return self._embedded

    async def wait_registered(self) -> int:
        """Wait until registered (again) and return the creation."""
        while True:
            await self._registered.wait()
            creation = self.creation
            if creation is not None:
                return creation
            self._registered.clear()

    async def _register_once(self) -> Registration:
        if self._embedded is None or not self._embedded.serving:
            self._embedded = await ensure_epmd(
                epmd_port=self._epmd_port,
                host=self._host,
                addresses=self._addresses,
                timeout=self._timeout,
            )
        return await register(
            self.name,
            self.port,
            hidden=self._hidden,
            host=self._host,
            epmd_port=self._epmd_port,
            timeout=self._timeout,
        )

    async def _start(self) -> None:
        self._registration = await self._register_once()
        self._registered.set()
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"epmd-keep-registered-{self.name}"
        )

    async def _run(self) -> None:
        while not self._closing:
            assert self._registration is not None
            await self._registration.wait_closed()
            self._registered.clear()
            log.warning("EPMD registration of %r lost; registering again", self.name)
            self._registration = await self._reregister()
            if self._closing:
                return
            self._registered.set()
            log.info("%r registered again with creation %d", self.name, self._registration.creation)
            if self._on_change is not None:
                self._on_change(self._registration.creation)

    async def _reregister(self) -> Registration:
        delay = self._retry_interval
        while True:
            try:
                return await self._register_once()
            except (EpmdError, OSError) as exc:
                log.debug("re-registering %r failed (%s); retrying in %.2f s", self.name, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_RETRY_INTERVAL)

    async def close(self) -> None:
        """Stop renewing, unregister, and stop the embedded EPMD if this process runs one.

        Stopping the embedded EPMD drops the other local nodes' registrations; their own
        ``KeptRegistration`` then takes over.
        """
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            # A cancellation can be lost when it lands as an awaited step completes (asyncio's
            # wait_for before Python 3.12): cancel again until the task has ended.
            while not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=0.5)
            if not task.cancelled() and task.exception() is not None:
                log.warning("keeping %r registered failed: %s", self.name, task.exception())
        if self._registration is not None:
            await self._registration.close()
        if self._embedded is not None:
            await self._embedded.close()
            self._embedded = None


async def keep_registered(
    name: str,
    port: int,
    *,
    hidden: bool = False,
    host: str = "127.0.0.1",
    epmd_port: int | None = None,
    addresses: Sequence[str] | None = None,
    on_change: Callable[[int], None] | None = None,
    retry_interval: float = 0.1,
    timeout: float = DEFAULT_TIMEOUT,
) -> KeptRegistration:
    """Register ``name``/``port`` (starting an embedded EPMD if none answers) and keep it so.

    Returns once the first registration succeeded; its errors (``NameInUse``,
    ``EpmdUnavailable``, ...) propagate. Afterwards a task re-registers whenever EPMD drops the
    registration, retrying with backoff, and calls ``on_change(creation)`` after each
    re-registration. ``addresses`` are where an embedded EPMD listens (default: all interfaces).
    ``close()`` stops it all.
    """
    kept = KeptRegistration(
        name,
        port,
        hidden=hidden,
        host=host,
        epmd_port=epmd_port,
        addresses=addresses,
        on_change=on_change,
        retry_interval=retry_interval,
        timeout=timeout,
    )
    try:
        await kept._start()
    except BaseException:
        await kept.close()
        raise
    return kept
