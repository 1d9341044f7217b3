"""Erlang's ``global`` on a beamlink node, split the way ``global.erl`` names its parts:

- `vocabulary`: the wire atoms and constants (protocol version 8), pid order, name keys;
- `tables`: the name and lock tables, sans-I/O;
- `server`: ``global_name_server`` and its sync sessions (``init_connect`` ... ``resolved``);
- `locker`: the locker process that locks both partitions for a session;
- `resolve`: name conflicts (``exchange_names``, ``resolve_it`` and global's resolve methods);
- `api`: the registrar, the user API, the ``global`` RPC module and `GlobalService`, the kernel
  service the node installs.

See docs/global.md.
"""

from beamlink.node.kernel.globalname.api import GlobalService
from beamlink.node.kernel.globalname.server import GlobalServer

__all__ = ["GlobalServer", "GlobalService"]
