"""The proxy port's connection cap.

Every client connection costs a file descriptor, and one more for its worker connection: a
process at its file limit can accept nothing, the admin port included. The cap keeps client
connections well under that limit, and a connection over it is closed as soon as it is
accepted — before any parsing or bookkeeping — so refusing costs almost nothing.
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from typing import Final

import structlog

log = structlog.get_logger("lb.http.limits")

_REFUSAL_LOG_INTERVAL_S: Final = 10.0
# File descriptors kept for what is not a client connection: the admin port's listener and
# its clients, health checks, the state file, Redis, logs.
RESERVED_FDS: Final = 128


def connection_cap(max_connections: int) -> int:
    """The client connections the process can hold: ``max_connections`` (0: no cap of its
    own), lowered so each client and its worker connection fit under the file limit with
    :data:`RESERVED_FDS` to spare. 0 means no cap at all."""
    try:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return max_connections
    if soft == resource.RLIM_INFINITY:
        return max_connections
    by_files = max(1, (soft - RESERVED_FDS) // 2)
    return min(max_connections, by_files) if max_connections else by_files


class ConnectionCap:
    """Admits connections while fewer than :attr:`limit` are open; counts the refused."""

    def __init__(self, max_connections: int, clock: Callable[[], float]) -> None:
        self.limit = connection_cap(max_connections)
        self.refused = 0
        self._clock = clock
        self._logged_at = -_REFUSAL_LOG_INTERVAL_S

    def admit(self, open_connections: int) -> bool:
        if not self.limit or open_connections < self.limit:
            return True
        self.refused += 1
        now = self._clock()
        if now - self._logged_at >= _REFUSAL_LOG_INTERVAL_S:
            # At most one line per interval: a flood of refusals must not become a flood of logs.
            self._logged_at = now
            log.warning("connections_refused", max_connections=self.limit, refused=self.refused)
        return False
