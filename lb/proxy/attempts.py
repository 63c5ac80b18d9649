"""Attempts and retries: which instance gets a request, how many tries it has, what may be
tried again, and what each answer teaches (outlier accounting, affinity).

Retry rules: a request that never reached a worker (connect error) may go to another one; a
request a worker received is retried only when its method is idempotent, or when the worker
answered 503 ``at_capacity`` (it promises it did nothing). Either way the body must still be
at hand: bodies up to ``replay_buffer_bytes`` are read first for that reason, larger ones
stream and are never replayed once sent.

The instance's in-flight count is raised when it is chosen and lowered in a ``finally`` after
the last byte, so long streams and WebSockets count for their whole life.
"""

from __future__ import annotations

from typing import Final

import orjson

from common.contract import is_at_capacity
from lb.fleet.ejection import OutlierDetector
from lb.fleet.registry import Instance
from lb.http.exchange import Exchange
from lb.http.shutdown import ShutdownState
from lb.http.upstream import UpstreamConnection, UpstreamError
from lb.metrics import LBMetrics
from lb.proxy import relay
from lb.proxy.headers import OutgoingRequest, ResponseHead
from lb.proxy.upstreams import Upstreams
from lb.routing.affinity import AffinityTable
from lb.routing.router import NoInstance, Router
from lb.settings import LBSettings

IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
# A 503 body this small is read to see whether it is the worker's ``at_capacity`` promise.
_AT_CAPACITY_PEEK_BYTES: Final = 65536


class AttemptFailed(Exception):
    """One attempt failed; ``retryable`` says whether another instance may be tried."""

    def __init__(
        self, status: int, code: str, message: str, retryable: bool, *, stale: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retryable = retryable
        self.stale = stale  # failed on a kept-alive connection before any byte came back


class Forwarder:
    """Forwards one request, trying instances until one answers or the policy gives up."""

    def __init__(
        self,
        router: Router,
        upstreams: Upstreams,
        settings: LBSettings,
        outliers: OutlierDetector,
        metrics: LBMetrics,
        affinity: AffinityTable,
        shutdown: ShutdownState,
    ) -> None:
        self.router = router
        self.upstreams = upstreams
        self.outliers = outliers
        self.metrics = metrics
        self.affinity = affinity
        self._shutdown = shutdown
        self._max_body = settings.max_body_bytes
        self._replay_bytes = settings.replay_buffer_bytes
        self._attempts = settings.retries + 1
        self._retry_after_s = settings.retry_after_s
        self._first_byte_timeout_s = settings.first_byte_timeout_s

    async def forward(self, ex: Exchange, request: OutgoingRequest) -> tuple[int, str, int]:
        """Serve ``ex``: its status, the instance that answered (or ``-``), the attempts."""
        ex.check_body()  # a body already known to be malformed reaches no worker
        if ex.upgrade:
            pass
        elif ex.content_length is not None and ex.content_length <= self._replay_bytes:
            request.body = await ex.read_body() if ex.content_length else b""
        elif ex.has_body:
            request.replayable = False

        router = self.router
        key = request.affinity_key
        tried: set[str] | None = None
        last: AttemptFailed | None = None
        failed_on = "-"
        attempt = 0
        while attempt < self._attempts:
            attempt += 1
            try:
                instance = await router.acquire(key, request.creates_work, tried)
            except NoInstance as exc:
                if last is not None:
                    break  # report the worker's failure rather than the empty fleet
                self.metrics.no_instance.labels(exc.code).inc()
                relay.write_error(
                    ex, 503, exc.code, exc.message, request.request_id, self._retry_after_s
                )
                return 503, "-", attempt
            try:
                status = await self._attempt(ex, instance, request)
                if key is not None and 200 <= status < 300:
                    self.affinity.pin(key, instance.id)
                return status, instance.id, attempt
            except AttemptFailed as failure:
                # Kept without its traceback, which holds this very frame: no reference cycle
                # for the garbage collector to find (lb.gc_policy).
                last, failed_on = failure.with_traceback(None), instance.id
                if not (failure.retryable and request.replayable) or attempt >= self._attempts:
                    break
                if tried is None:
                    tried = set()
                tried.add(instance.id)
                self.metrics.retries.inc()
            finally:
                router.release(instance, request.creates_work)
        assert last is not None
        retry_after_s = self._retry_after_s if last.status == 503 else None
        relay.write_error(
            ex, last.status, last.code, last.message, request.request_id, retry_after_s
        )
        return last.status, failed_on, attempt

    async def _attempt(self, ex: Exchange, instance: Instance, request: OutgoingRequest) -> int:
        """One instance's try: send, judge the answer, relay it. Raises AttemptFailed."""
        pool = self.upstreams.pool(instance)
        try:
            if ex.upgrade:
                conn, reused = await pool.connect(), False  # tunnels never go back to the pool
            else:
                conn, reused = await pool.acquire()
        except UpstreamError as exc:
            raise self._unreachable(instance) from exc
        try:
            try:
                await self._send(ex, instance, conn, request)
            except AttemptFailed as failure:
                if not (reused and failure.stale and failure.retryable and request.replayable):
                    raise
                # A kept-alive connection the worker had just closed, no byte back: an
                # idempotent request goes again once, on a fresh connection to the same
                # instance, as browsers and HAProxy do. Anything else may have been received
                # and acted on, so it is never sent twice (RFC 9110 section 9.2.2).
                pool.release(conn)
                try:
                    conn = await pool.connect()
                except UpstreamError as exc:
                    raise self._unreachable(instance) from exc
                await self._send(ex, instance, conn, request)
            status = conn.status
            response = ResponseHead(conn.headers)  # the one pass over the response headers
            if response.fault is not None or (response.codings and ex.version != "1.1"):
                # RFC 9112 section 6.1: a transfer coding cannot reach an HTTP/1.0 client.
                fault = response.fault or "a transfer coding an HTTP/1.0 client cannot take"
                self.outliers.failure(instance)
                conn.close()
                raise AttemptFailed(502, "bad_response", f"instance {instance.id}: {fault}", False)
            may_be_full = self._judge(instance, status) and request.replayable
            if may_be_full and await _is_at_capacity(conn, response):
                raise AttemptFailed(503, "at_capacity", "every instance is at capacity", True)
            if response.learned is not None:
                for key in response.learned:
                    self.affinity.pin(key, instance.id)
            head = response.for_client(
                ex, status, conn.reason, instance.id, request.request_id, self._shutdown.begun
            )
            # Only streams and tunnels await here: a response complete on arrival is one write.
            if not conn.complete:
                cut = await relay.stream(ex, conn, head, response.rechunk)
                if cut is not None:
                    self.outliers.failure(instance)  # broke off mid-body
                    request.abort_reason = cut
            elif status == 101 and ex.upgrade:
                await relay.tunnel(ex, conn, head)
            else:
                relay.write_whole(ex, conn, head, response.rechunk)
            if request.starts_background and 200 <= status < 300:
                # The runs go on after their answer: load until a health check says how
                # many the worker still holds.
                instance.load.background += response.runs_started
            return status
        finally:
            pool.release(conn)

    def _unreachable(self, instance: Instance) -> AttemptFailed:
        # Never reached the worker: always safe to try another.
        self.outliers.failure(instance)
        return AttemptFailed(
            502, "upstream_unreachable", f"instance {instance.id} is unreachable", True
        )

    def _judge(self, instance: Instance, status: int) -> bool:
        """Count the answer for outlier detection; True for a 503, which may be the worker's
        ``at_capacity`` promise."""
        if status < 500:
            self.outliers.success(instance)
            return False
        self.outliers.failure(instance)
        return status == 503

    async def _send(
        self, ex: Exchange, instance: Instance, conn: UpstreamConnection, request: OutgoingRequest
    ) -> None:
        """Send the request and wait for the response head."""
        conn.begin(head_only=ex.method == "HEAD", upgrade=ex.upgrade)
        head = request.head
        if not ex.host:
            # HTTP/1.0 allowed leaving Host out; the HTTP/1.1 request we send may not.
            head = head[:-2] + b"Host: %s:%d\r\n\r\n" % (conn.pool.host.encode(), conn.pool.port)
        body = request.body
        try:
            if body is not None or not ex.has_body or ex.upgrade:
                conn.write(head + body if body else head)
            else:
                conn.write(head)
                await relay.send_body(ex, conn, self._max_body)
            # Only a connection whose request went out whole may carry another one.
            conn.request_sent = not conn.head_ready or ex.body_complete
            await conn.wait_head(self._first_byte_timeout_s)
        except TimeoutError as exc:
            conn.close()
            raise AttemptFailed(
                504, "upstream_timeout", f"instance {instance.id} did not answer in time", False
            ) from exc
        except UpstreamError as exc:
            stale = not conn.received_any
            if not stale:
                self.outliers.failure(instance)
            # The worker may have received the request: retry only what may be repeated. (Not
            # kept in a local: this frame would hold the exception that holds this frame.)
            raise AttemptFailed(
                502,
                "upstream_error",
                f"instance {instance.id} failed: {exc}",
                ex.method in IDEMPOTENT,
                stale=stale,
            ) from exc


async def _is_at_capacity(conn: UpstreamConnection, response: ResponseHead) -> bool:
    """Whether a 503 is the worker's ``at_capacity`` promise (reads its body when small)."""
    length = response.content_length
    if length is None or length > _AT_CAPACITY_PEEK_BYTES:
        return False
    await conn.wait_done()
    body = b"".join(conn.body)
    if b"at_capacity" not in body:
        return False
    try:
        return is_at_capacity(orjson.loads(body))
    except orjson.JSONDecodeError:
        return False
