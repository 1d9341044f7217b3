"""Erlang's ``pg`` (process groups, OTP 23+) on a beamlink node, split the way the protocol is:

- `core`: one scope's membership and peers and their transitions, sans-I/O (effects out);
- `scope`: the scope process and the Python API of one scope (`PgScope`, `PgMonitor`);
- `service`: `PgService`, the kernel service that starts scopes on demand.

See docs/pg.md.
"""

from beamlink.node.kernel.pg.scope import PgEvent, PgMonitor, PgScope, group_key
from beamlink.node.kernel.pg.service import DEFAULT_SCOPE, PgService

__all__ = ["DEFAULT_SCOPE", "PgEvent", "PgMonitor", "PgScope", "PgService", "group_key"]
