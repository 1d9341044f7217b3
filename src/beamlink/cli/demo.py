"""``beamlink demo``: a local cluster on 127.0.0.x with the embedded EPMD, shown live.

It starts N ``beamlink start`` processes (``demo1@127.0.0.2``, ``demo2@127.0.0.3``, ...) that find
each other with an ``epmd`` topology, plus a real ``erl`` node when one is installed, then shows
every node's node list (asked over RPC by a hidden control node) once a second until Ctrl-C or
``--duration``. When no EPMD answers, the demo runs an embedded one itself, listening on the
loopback addresses of its nodes only; the first node is started alone and awaited. Nothing listens
beyond loopback: each node binds its own 127.0.0.x (``BEAMLINK_LISTEN_HOST``) and ``erl`` binds
127.0.0.1 (``inet_dist_use_interface``). No cookie appears on a command line (``ps`` shows argv to
every local user): the beamlink nodes get it in their environment, ``erl`` from the
``.erlang.cookie`` (mode 0400) of a private temporary HOME. Children run in their own session (a
Ctrl-C reaches only the demo, which then stops them); every process started here is stopped (the
first node last), and its log shown if the mesh did not form, before :func:`run_demo` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from beamlink.cli.control import start_control_node

ERL_NAME = "erl_demo@127.0.0.1"
REFRESH = 1.0
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
LOG_TAIL = 15


@dataclass
class _Child:
    name: str
    proc: asyncio.subprocess.Process
    log: Path


def _address(name: str) -> str:
    return name.partition("@")[2]


def _erl_home(tmp: Path, cookie: str) -> Path:
    """A private HOME whose ``.erlang.cookie`` (0400) gives ``erl`` its cookie."""
    home = tmp / "erl-home"
    home.mkdir(mode=0o700)
    path = home / ".erlang.cookie"
    path.write_text(cookie)
    path.chmod(0o400)
    return home


def _topology(names: list[str]) -> str:
    hosts = ", ".join(f'"{n}"' for n in names)
    return f'[topologies.demo]\nstrategy = "epmd"\nhosts = [{hosts}]\npolling_interval = 1000\n'


async def _spawn(name: str, argv: list[str], env: dict[str, str], tmp: Path) -> _Child:
    log = tmp / f"{name.partition('@')[0]}.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True,
        )
    return _Child(name, proc, log)


async def _registered(epmd_port: int) -> set[str]:
    from beamlink.epmd.client import EpmdError, names

    try:
        return {name for name, _ in await names("127.0.0.1", epmd_port=epmd_port, timeout=1.0)}
    except (EpmdError, OSError, asyncio.TimeoutError):
        return set()


async def _node_list(node: Any, target: str) -> list[str] | None:
    try:
        names = await node.rpc(target, "erlang", "nodes", [], timeout=2.0)
    except Exception:
        return None
    return sorted(str(n) for n in names)


def _render(rows: list[tuple[str, list[str] | None]], elapsed: float, tty: bool) -> str:
    width = max(len(name) for name, _ in rows) + 1
    lines = [f"beamlink demo cluster  t={elapsed:5.1f}s  (Ctrl-C stops)", ""]
    for name, peers in rows:
        shown = "(starting)" if peers is None else (", ".join(peers) or "(no peers yet)")
        count = "" if peers is None else f"[{len(peers)}/{len(rows) - 1}] "
        lines.append(f"{name:<{width}} sees {count}{shown}")
    text = "\n".join(lines) + "\n"
    return ("\x1b[H\x1b[2J" + text) if tty else text + "\n"


async def _stop_all(children: list[_Child]) -> list[int | None]:
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            child.proc.terminate()
    statuses: list[int | None] = []
    for child in children:
        try:
            statuses.append(await asyncio.wait_for(child.proc.wait(), STOP_TIMEOUT))
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                child.proc.kill()
            await child.proc.wait()
            statuses.append(None)
    return statuses


def _show_logs(children: list[_Child]) -> None:
    for child in children:
        lines = child.log.read_text(errors="replace").splitlines()[-LOG_TAIL:]
        print(f"--- last lines of {child.name}'s log ---", file=sys.stderr)
        for line in lines:
            print(line, file=sys.stderr)


async def run_demo(count: int, duration: float | None, *, with_erlang: bool = True) -> int:
    """Run the demo; 0 when every node saw every other at least once, else 1.

    SIGINT (Ctrl-C) and SIGTERM end it early, as cleanly as ``duration`` does; further signals
    are ignored while the nodes are being stopped.
    """
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    interrupted: list[int] = []

    def interrupt(sig: int) -> None:
        if not interrupted:
            interrupted.append(sig)
            main.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt, sig)
    try:
        return await _demo(count, duration, with_erlang=with_erlang)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _demo(count: int, duration: float | None, *, with_erlang: bool) -> int:
    from beamlink.epmd.client import default_epmd_port
    from beamlink.epmd.server import ensure_epmd
    from beamlink.settings import COOKIE, EPMD_PORT, LISTEN_HOST

    cookie = secrets.token_hex(8)
    epmd_port = default_epmd_port()
    names = [f"demo{i}@127.0.0.{i + 1}" for i in range(1, count + 1)]
    erl = shutil.which("erl") if with_erlang else None
    members = [*names, *([ERL_NAME] if erl else [])]
    tmp = Path(tempfile.mkdtemp(prefix="beamlink-demo-"))
    config = tmp / "demo.toml"
    config.write_text(_topology(members))
    env = {**os.environ, COOKIE.variables[0]: cookie, EPMD_PORT.variables[0]: str(epmd_port)}
    tty = sys.stdout.isatty()
    children: list[_Child] = []
    formed = False
    epmd = await ensure_epmd(
        epmd_port=epmd_port, addresses=["127.0.0.1", *(_address(n) for n in names)]
    )
    observer = None
    try:
        observer = await start_control_node(names[0], cookie)

        def start_argv(name: str) -> list[str]:
            return [sys.executable, "-m", "beamlink", "start", "--name", name,
                    "--config", str(config)]

        async def start(name: str) -> _Child:
            node_env = {**env, LISTEN_HOST.variables[0]: _address(name)}
            return await _spawn(name, start_argv(name), node_env, tmp)

        children.append(await start(names[0]))
        deadline = time.monotonic() + START_TIMEOUT
        while names[0].partition("@")[0] not in await _registered(epmd_port):
            if time.monotonic() > deadline or children[0].proc.returncode is not None:
                print(f"{names[0]} did not start", file=sys.stderr)
                return 1
            await asyncio.sleep(0.1)
        for name in names[1:]:
            children.append(await start(name))
        if erl:
            children.append(await _spawn(ERL_NAME, [
                erl, "-noshell", "-name", ERL_NAME,
                "-kernel", "inet_dist_use_interface", "{127,0,0,1}",
                "-eval", f"net_adm:ping('{names[0]}')",
            ], {**env, "HOME": str(_erl_home(tmp, cookie))}, tmp))
        started = time.monotonic()
        while duration is None or time.monotonic() - started < duration:
            registered = await _registered(epmd_port)
            rows = [
                (m, await _node_list(observer, m) if m.partition("@")[0] in registered else None)
                for m in members
            ]
            print(_render(rows, time.monotonic() - started, tty), end="", flush=True)
            formed = formed or all(p is not None and len(p) == len(members) - 1 for _, p in rows)
            await asyncio.sleep(REFRESH)
    except asyncio.CancelledError:
        print()
    finally:
        if observer is not None:
            await observer.stop()
        # The first node goes last (it would run the embedded EPMD if the demo could not).
        statuses = [*await _stop_all(children[1:]), *await _stop_all(children[:1])]
        children = [*children[1:], *children[:1]]
        _show_logs([child for child, status in zip(children, statuses, strict=True)
                    if not formed or status is None])
        if epmd is not None:
            await epmd.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print("full mesh formed; all nodes stopped" if formed
          else "the cluster did not form a full mesh; all nodes stopped")
    killed = [child.name for child, status in zip(children, statuses, strict=True) if status is None]
    if killed:
        print(f"killed after {STOP_TIMEOUT:.0f} s: {', '.join(killed)}", file=sys.stderr)
    return 0 if formed and not killed else 1
