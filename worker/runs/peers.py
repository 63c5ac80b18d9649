"""Stop commands carried to the worker that executes a run: the relay first, then its address.

With Redis the relay's pub/sub carries a command to its holder. Without Redis (a SQLite
fleet on one machine, Postgres alone), or when no subscriber heard it, the command goes
straight to the holder over HTTP: every worker records the URL it is reached at in the
store (``gf_workers``, beside the leases), and serves :data:`STOP_PATH`. The request names
the holder it is meant for, so a worker that now listens at that address under another id
(a reused port, a wildcard address reaching this machine) refuses it instead of stopping a
run that is not its own.

A holder that hears a stop applies it at once (its run's task is cancelled before it
answers), which is why this comes before anything else: the store is the slower channel,
read by the holder only at its next lease renewal (``Canceller`` falls back to it when this
returns False). A holder that could not be reached is not called again for
``COMMAND_TIMEOUT_S``: a bulk cancel of many of its runs costs one timeout, not one each.

The workers' own API has no credentials (a cancel through the LangGraph routes is open to
whoever reaches a worker), so neither has this call: it can do nothing those routes cannot.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import aiohttp
import structlog

from common.contract import FLEET_PREFIX
from worker.runs.relay import Relay
from worker.store.base import Store

log = structlog.get_logger("worker.peers")

STOP_PATH = FLEET_PREFIX + "runs/{run_id}/stop"
COMMAND_TIMEOUT_S = 2.0  # a holder answers at once (no I/O); longer means it is not there


class CommandSender(Protocol):
    async def send_command(self, worker_id: str, run_id: str, action: str) -> bool:
        """Ask ``worker_id`` to apply ``action`` to ``run_id``; True if it heard it."""
        ...


class PeerCommands:
    """A ``CommandSender`` over the relay and then the holder's recorded address."""

    def __init__(
        self,
        *,
        relay: Relay,
        store: Store,
        session: aiohttp.ClientSession,
        worker_id: str,
        timeout_s: float = COMMAND_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._relay = relay
        self._store = store
        self._session = session
        self._worker_id = worker_id
        self._timeout_s = timeout_s
        self._clock = clock
        self._unreachable_until: dict[str, float] = {}  # holder -> when to try it again

    async def send_command(self, worker_id: str, run_id: str, action: str) -> bool:
        if worker_id == self._worker_id:
            return False  # this worker's own runs are stopped in place, never through here
        if await self._relay.send_command(worker_id, run_id, action):
            return True
        return await self._post(worker_id, run_id, action)

    async def _post(self, holder: str, run_id: str, action: str) -> bool:
        if self._clock() < self._unreachable_until.get(holder, 0.0):
            return False
        # Only a worker holding a live lease is asked: one whose lease lapsed is gone or cut
        # off, and its runs are the sweeper's.
        url = (await self._store.lease_holders(self._worker_id)).get(holder)
        if url is None:
            return False
        target = url.rstrip("/") + STOP_PATH.format(run_id=run_id)
        timeout = aiohttp.ClientTimeout(total=self._timeout_s)
        try:
            async with self._session.post(
                target, json={"action": action, "holder": holder}, timeout=timeout
            ) as response:
                if response.status != 200:
                    # Not the holder at that address (a port reused, a worker replaced): not
                    # asked again for a while, as an unreachable one.
                    self._unreachable_until[holder] = self._clock() + self._timeout_s
                    log.warning(
                        "peer_command_refused", holder=holder, url=url, status=response.status
                    )
                    return False
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._unreachable_until[holder] = self._clock() + self._timeout_s
            log.warning("peer_command_failed", holder=holder, url=url, error=repr(exc))
            return False
        except ValueError:  # not JSON: not a worker of this fleet answering
            log.warning("peer_command_refused", holder=holder, url=url, status=200)
            return False
        self._unreachable_until.pop(holder, None)
        return isinstance(answer, dict) and answer.get("applied") is True
