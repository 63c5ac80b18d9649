"""Runs that outlive their worker: lease renewal, and the sweeper that claims orphaned runs.

Every worker runs both loops. The heartbeat renews the leases of the runs this worker
executes every third of ``WORKER_RUN_LEASE_S``; a run whose lease another worker took in the
meantime (this worker stalled past its lease) is stopped here without a word written, since
its new holder now reports on it; a run whose record another worker marked cancelled (that
worker's command did not reach this one: ``worker.runs.cancelling``) is stopped here as the
mark asks: interrupted, or rolled back.
The sweeper, every ``WORKER_SWEEP_INTERVAL_S`` while the worker takes work, claims runs whose
lease expired (their worker died, or released them at shutdown) up to its free capacity and
resumes them from their last checkpoint; runs past ``WORKER_RUN_MAX_ATTEMPTS`` are failed by
the store instead. A run cancelled on record keeps its lease until its holder ends it, so
one whose holder died is claimed too, and ended here as the cancel asked (its thread's status
set, a rollback undone) rather than resumed.

A dead worker is not waited out: before each claim the sweeper probes the recorded URL of
every other lease holder, and a holder whose address *refuses the connection* (nothing listens
there: the process is gone) has its leases expired at once, so its runs are resumed within a
sweep interval of its death (only at addresses where a refusal means that: :func:`probeable`).
Only a refusal counts. A timeout or an unreachable network (a partition, an overloaded host)
proves nothing, so those holders keep their leases until they lapse. A worker stops listening
only after its runs have stopped and their leases were released (shutdown drains first), so a
refusal never takes a run that is still executing; and a holder that finds its lease gone
stops without writing (:meth:`Recovery.renew`; its status writes are fenced by its attempt).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable, Sequence

import structlog
from yarl import URL

from worker.errors import ApiError
from worker.runs.execution import Execution
from worker.runs.manager import RunManager
from worker.runs.relay import Relay
from worker.runs.service import RunService
from worker.store.base import ACTIVE_RUN_STATES, Store

log = structlog.get_logger("worker.recovery")

PROBE_TIMEOUT_S = 1.0
_WILDCARDS = frozenset({"0.0.0.0", "::"})
# True: nothing listens at the URL (the holder is gone). False: it answered, or the question
# could not be settled (timeout, unreachable network).
Probe = Callable[[str], Awaitable[bool]]


def probeable(url: str, own_url: str) -> bool:
    """Whether a refusal at ``url`` would mean its worker is gone. Not for a wildcard address
    (``0.0.0.0`` names no host: the probe would reach this machine), nor for loopback unless
    this worker is on loopback too (a fleet on one machine); from another machine or
    container, loopback is somebody else's."""
    host = (URL(url).host or "").strip("[]")
    if host in _WILDCARDS or not host:
        return False
    if _is_loopback(host):
        return _is_loopback((URL(own_url).host or "").strip("[]"))
    return True


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def refuses_connections(url: str) -> bool:
    """Whether connecting to ``url``'s host and port is refused outright."""
    parsed = URL(url)
    if not parsed.host or parsed.port is None:
        return False
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            _reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
    except ConnectionRefusedError:
        return True
    except (OSError, TimeoutError):
        return False
    writer.close()
    return False


class Recovery:
    """The two loops of one worker; run ``heartbeat()`` and ``sweep_forever()`` as tasks."""

    def __init__(
        self,
        *,
        store: Store,
        manager: RunManager,
        service: RunService,
        relay: Relay,
        worker_id: str,
        worker_url: str,
        graph_ids: Sequence[str],
        lease_s: float,
        sweep_interval_s: float,
        max_attempts: int,
        probe: Probe = refuses_connections,
    ) -> None:
        self._store = store
        self._manager = manager
        self._service = service
        self._relay = relay
        self._worker_id = worker_id
        self._worker_url = worker_url
        self._graph_ids = list(graph_ids)
        self._lease_s = lease_s
        self._sweep_interval_s = sweep_interval_s
        self._max_attempts = max_attempts
        self._probe = probe

    async def heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._lease_s / 3)
            try:
                await self.renew()
            except Exception:
                log.exception("lease_renewal_failed")

    async def renew(self) -> None:
        # Only runs whose record is written (their task started) have a lease to renew.
        ids = self._manager.recorded_ids
        renewed = await self._store.renew_leases(self._worker_id, ids)
        for run_id in ids:
            if run_id in renewed:
                continue
            # Not renewed: ended meanwhile (fine), cancelled on record by another worker, or
            # taken over. Only the record can tell.
            record = await self._store.get_run(run_id)
            if record is None:
                continue
            if record.worker_id != self._worker_id:
                # Taken over: to resume it, or to end it as a cancel on its record asks.
                if record.status in (*ACTIVE_RUN_STATES, "cancelled"):
                    log.warning("run_lease_lost", run_id=run_id)
                    self._manager.lose(run_id)
            elif record.status == "cancelled":
                action = await self._store.stop_on_record(run_id) or "interrupt"
                if self._manager.stop_cancelled_on_record(run_id, action):
                    log.info("run_cancelled_on_record", run_id=run_id, action=action)

    async def sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("orphan_sweep_failed")
            await asyncio.sleep(self._sweep_interval_s)

    async def expire_dead_holders(self) -> list[str]:
        """Expire the leases of holders whose address refuses connections; their ids."""
        holders = {
            holder: url
            for holder, url in (await self._store.lease_holders(self._worker_id)).items()
            if probeable(url, self._worker_url)
        }
        if not holders:
            return []
        ids = list(holders)
        refused = await asyncio.gather(*(self._probe(holders[i]) for i in ids))
        dead = [holder for holder, gone in zip(ids, refused, strict=True) if gone]
        for holder in dead:
            released = await self._store.release_runs(holder)
            log.warning("lease_holder_gone", holder=holder, url=holders[holder], runs=released)
        return dead

    async def sweep(self) -> int:
        """Claim and resume what this worker can take now; returns how many it resumed."""
        admission = self._manager.admission
        if admission.draining:
            return 0
        free = admission.free
        if free > 0:
            await self.expire_dead_holders()
        claim = await self._store.claim_expired_runs(
            self._worker_id,
            self._graph_ids,
            limit=free,
            max_attempts=self._max_attempts,
            abandoned_events=self._manager.outbox.abandoned,
        )
        for record in claim.abandoned:
            log.warning("run_abandoned", run_id=record.run_id, attempts=record.attempt)
            self._relay.end(record.run_id, record.attempt)
            self._relay.cache_execution(record.run_id, Execution.of(record).view())
            self._manager.observers.run_abandoned(record)
        resumed = 0
        for record in claim.claimed:
            try:
                await self._service.recover(record)
            except ApiError as exc:
                # Full after all, or the graph is gone: let another worker have it.
                log.warning("claimed_run_not_resumed", run_id=record.run_id, reason=str(exc))
                await self._store.release_runs(self._worker_id, [record.run_id])
                continue
            resumed += 1
            event = "run_resumed" if record.status in ACTIVE_RUN_STATES else "run_ended_for_holder"
            log.info(event, run_id=record.run_id, attempt=record.attempt)
        return resumed
