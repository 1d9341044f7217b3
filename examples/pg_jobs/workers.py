"""Python workers in a ``pg`` group that an Elixir node sends jobs to (see README.md).

Starts a node, starts the pg scope ``jobs`` and ``--count`` worker processes that join its group
``workers``. A worker answers ``{job, ReplyTo, Id, N}`` with ``{result, Id, N * N, WorkerNode}``
sent to ``ReplyTo``. Prints ``ready`` once the workers have joined, then serves until stopped
(Ctrl-C) or for ``--seconds``.

    python3 examples/pg_jobs/workers.py --name workers@127.0.0.1 --cookie secret
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import Any

from beamlink import Atom, Node, Pid, Process

SCOPE = "jobs"  # the Elixir side runs :pg.start_link(:jobs)
GROUP = Atom("workers")  # and sends to :pg.get_members(:jobs, :workers)
JOB = Atom("job")
RESULT = Atom("result")


async def worker(proc: Process) -> None:
    """Answer jobs for ever; anything that is not a job is ignored."""
    while True:
        msg: Any = await proc.receive()
        if type(msg) is tuple and len(msg) == 4 and msg[0] == JOB:
            _, reply_to, job_id, n = msg
            if isinstance(reply_to, Pid) and isinstance(n, int):
                proc.send(reply_to, (RESULT, job_id, n * n, proc.node.name))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="workers@127.0.0.1")
    parser.add_argument("--cookie", default=None, help="default: $BEAMLINK_COOKIE, ~/.erlang.cookie")
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=None, help="default: until Ctrl-C")
    args = parser.parse_args()
    async with Node.start(args.name, args.cookie) as node:
        scope = node.pg_scope(SCOPE)
        scope.join(GROUP, [node.spawn(worker) for _ in range(args.count)])
        print(f"ready: {args.count} workers of {node.name} joined {GROUP} in scope {SCOPE}",
              flush=True)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.Event().wait(), args.seconds)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
