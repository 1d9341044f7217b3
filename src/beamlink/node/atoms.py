"""Atoms the whole node layer speaks: exit and monitor messages, reasons, gen_server tags.

One definition each, so the runtime, the gen_server helpers and the kernel services compare the
same (interned) atoms. Vocabulary of one protocol only (erpc, global) stays with that protocol.
"""

from __future__ import annotations

from typing import Final

from beamlink.etf import Atom

OK: Final = Atom("ok")
ERROR: Final = Atom("error")
YES: Final = Atom("yes")
NO: Final = Atom("no")
UNDEFINED: Final = Atom("undefined")

# Messages the runtime puts in mailboxes.
EXIT_TAG: Final = Atom("EXIT")
DOWN_TAG: Final = Atom("DOWN")
PROCESS: Final = Atom("process")
SPAWN_REPLY_TAG: Final = Atom("spawn_reply")

# Exit reasons.
NORMAL: Final = Atom("normal")
KILL: Final = Atom("kill")
KILLED: Final = Atom("killed")
SHUTDOWN: Final = Atom("shutdown")  # node stop, like a supervisor's shutdown at init:stop()
NOPROC: Final = Atom("noproc")
NOCONNECTION: Final = Atom("noconnection")
UNDEF: Final = Atom("undef")
PYTHON_EXCEPTION: Final = Atom("python_exception")

# gen_server / gen wire tags (gen.erl).
GEN_CALL: Final = Atom("$gen_call")
GEN_CAST: Final = Atom("$gen_cast")
ALIAS: Final = Atom("alias")

# RPC results (rpc.erl).
BADRPC: Final = Atom("badrpc")
