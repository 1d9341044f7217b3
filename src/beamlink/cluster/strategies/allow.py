"""The ``allow`` list of strategies that learn names from unauthenticated sources.

``local_epmd`` and ``erlang_hosts`` read names any local user can register in EPMD, and
``libcluster_compat`` gossip reads names anyone on the network can forge. Dialling such a name is
dangerous: the distribution digest names neither side, so whoever answers can relay our
challenge to a member and replay our digest (challenge reflection). `AllowList` keeps only the
names matching the topology's ``allow`` patterns (``fnmatch``, case-sensitive) and logs the
others, rate-limited and quoted with ``repr`` so a hostile name cannot forge log lines.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Iterable

from beamlink.logs import RateLimiter

log = logging.getLogger("beamlink.cluster")


class AllowList:
    """Node-name patterns of one topology; `filter` drops (and logs) names outside them."""

    def __init__(self, topology: str, patterns: Iterable[str], *, log_interval: float = 60.0) -> None:
        self.topology = topology
        self.patterns = tuple(patterns)
        self._regex = re.compile(
            "|".join(f"(?:{fnmatch.translate(p)})" for p in self.patterns) or "(?!)"
        )
        self._refused = RateLimiter(interval=log_interval, max_keys=1)
        self.refused = 0

    def allows(self, name: str) -> bool:
        return self._regex.match(name) is not None

    def filter(self, names: Iterable[str]) -> frozenset[str]:
        """The names matching a pattern; a line (at most one per interval) reports the others."""
        kept: set[str] = set()
        outside: list[str] = []
        for name in names:
            (kept.add if self.allows(name) else outside.append)(name)
        if outside:
            self.refused += len(outside)
            self._refused.log(
                log,
                logging.WARNING,
                self.topology,
                "[%s] not dialling %d discovered name(s) outside the allow list, e.g. %r",
                self.topology,
                len(outside),
                outside[0][:80],
            )
        return frozenset(kept)
