"""Thread and run affinity: requests that name a thread go where that thread's run lives.

The key of a request is the thread in ``/threads/{thread_id}/...``, the execution in
``/executions/{id}``, or the ``X-Thread-ID`` header. The LB learns where a key lives from its
own routing: a successful request that names a key pins it to the instance that answered, and
a worker's ``Location``/``Content-Location`` header naming ``/threads/{t}`` or
``/executions/{id}`` pins that too (that is how a run created by ``POST /graphs/execute`` or a
stateless run is found again). The table is bounded (least recently used goes first) and its
entries expire.
"""

from __future__ import annotations

from collections import OrderedDict

from common.contract import affinity_key
from lb.fleet.registry import Clock


def key_from_path(path: str) -> str | None:
    """``/threads/abc/runs`` → ``thread:abc``; ``/executions/x`` → ``execution:x``."""
    return affinity_key(path)


def key_from_location(location: str) -> str | None:
    """The key named by a worker's ``Location`` or ``Content-Location`` header, if any."""
    if location.startswith(("http://", "https://")):
        # Same-origin absolute URL: keep the path only.
        slash = location.find("/", location.find("//") + 2)
        location = location[slash:] if slash >= 0 else "/"
    # Unlike a request's path, a header is a whole URI reference: drop its query and fragment.
    return key_from_path(location.partition("?")[0].partition("#")[0])


class AffinityTable:
    """A bounded, expiring map from affinity key to instance id."""

    def __init__(self, max_size: int, ttl_s: float, clock: Clock) -> None:
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._max_size = max_size
        self._ttl_s = ttl_s
        self._clock = clock

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        instance_id, expires_at = entry
        if expires_at <= self._clock():
            del self._entries[key]
            return None
        return instance_id

    def pin(self, key: str, instance_id: str) -> None:
        entries = self._entries
        entries[key] = (instance_id, self._clock() + self._ttl_s)
        entries.move_to_end(key)
        while len(entries) > self._max_size:
            entries.popitem(last=False)

    def forget_instance(self, instance_id: str) -> None:
        for key in [k for k, (owner, _) in self._entries.items() if owner == instance_id]:
            del self._entries[key]
