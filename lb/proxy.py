"""The proxy's request path: route, forward, stream back, and account for every request.

Per request: check limits, pick an instance (affinity, then the strategy, then the capacity
queue), forward with streaming bodies both ways, and retry on another instance when that is
safe. The in-flight counter of the chosen instance is raised the moment it is chosen and
lowered in a ``finally`` when the last byte of the response has gone, so long streams and
WebSockets count for their whole life.

Retry rules: a request that never reached a worker (connect error) may go to another one; a
request a worker received is retried only when its method is idempotent, or when the worker
answered 503 ``at_capacity`` (it promises it did nothing). Either way the body must still be
at hand: bodies up to ``replay_buffer_bytes`` are read first for that reason, larger ones
stream and are never replayed once sent.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Final

import aiohttp
import orjson
import structlog
from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy, istr

from lb.affinity import AffinityTable, key_from_location, key_from_path
from lb.capacity import CapacityQueue, QueueFull
from lb.ejection import OutlierDetector
from lb.errors import error_response
from lb.metrics import LBMetrics
from lb.registry import Health, Instance, Registry
from lb.settings import LBSettings
from lb.strategies import Strategy, has_room
from lb.websocket import proxy_websocket

log = structlog.get_logger("lb.proxy")

HOP_BY_HOP: Final = frozenset(
    istr(h)
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
    )
)
IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
X_REQUEST_ID: Final = istr("X-Request-ID")
X_FLEET_INSTANCE: Final = istr("X-Fleet-Instance")
X_THREAD_ID: Final = istr("X-Thread-ID")
X_FORWARDED_FOR: Final = istr("X-Forwarded-For")
X_FORWARDED_PROTO: Final = istr("X-Forwarded-Proto")
X_FORWARDED_HOST: Final = istr("X-Forwarded-Host")
# Responses up to this size with a Content-Length are read whole and sent in one write, as
# nginx's proxy buffers do; anything larger, or of unknown length (SSE), streams.
SMALL_RESPONSE_BYTES: Final = 65536
STREAM_CHUNK_BYTES: Final = 65536
_UPGRADED: Final = web.RequestKey("lb.websocket_instance", str)


class NoInstance(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class BodyTooLarge(Exception):
    pass


class _Attempt(Exception):
    """An attempt failed in a way that may be retried on another instance."""

    def __init__(self, status: int, code: str, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retryable = retryable


class Proxy:
    """The request handler of the proxy port. ``strategy`` may be swapped at run time."""

    def __init__(
        self,
        registry: Registry,
        strategy: Strategy,
        session: aiohttp.ClientSession,
        settings: LBSettings,
        outliers: OutlierDetector,
        metrics: LBMetrics,
        affinity: AffinityTable,
    ) -> None:
        self.registry = registry
        self.strategy = strategy
        self.session = session
        self.outliers = outliers
        self.metrics = metrics
        self.affinity = affinity
        self.queue = CapacityQueue(settings.queue_size)
        self._settings = settings
        self._max_body = settings.max_body_bytes
        self._max_header_bytes = settings.max_header_bytes
        self._replay_bytes = settings.replay_buffer_bytes
        self._attempts = settings.retries + 1
        self._queue_timeout_s = settings.queue_timeout_s
        self._retry_after = {"Retry-After": str(settings.retry_after_s)}
        self._first_byte_timeout_s = settings.first_byte_timeout_s
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=settings.connect_timeout_s, sock_read=None
        )
        # Decided once: a disabled access log costs the hot path one attribute test.
        self._access_log = settings.access_log and settings.log_level in ("debug", "info")
        registry.subscribe(lambda _snapshot: self.queue.wake_all())

    # -- routing ---------------------------------------------------------------------------

    def _pick(self, key: str | None, creates_work: bool, tried: set[str] | None) -> Instance | None:
        snapshot = self.registry.snapshot
        if key is not None:
            owner_id = self.affinity.get(key)
            if owner_id is not None and (tried is None or owner_id not in tried):
                owner = snapshot.by_id.get(owner_id)
                # The holder of a thread keeps answering for it while it is healthy, even
                # draining (join, cancel, resume); only new work looks elsewhere.
                if (
                    owner is not None
                    and owner.health is Health.HEALTHY
                    and not owner.ejected
                    and (not creates_work or (owner.routable and has_room(owner)))
                ):
                    return owner
        if tried is None:
            return self.strategy.choose(snapshot.routable)
        return self.strategy.choose(snapshot.routable, tried)

    async def _acquire(
        self, key: str | None, creates_work: bool, tried: set[str] | None
    ) -> Instance:
        """Choose an instance and count the request against it, waiting for room if needed."""
        queue = self.queue
        deadline: float | None = None
        while True:
            if not queue or deadline is not None:
                instance = self._pick(key, creates_work, tried)
                if instance is not None:
                    # No await between choosing and counting: the count is what the next
                    # request's choice sees.
                    instance.load.inflight += 1
                    return instance
            snapshot = self.registry.snapshot
            candidates = [i for i in snapshot.routable if tried is None or i.id not in tried]
            if not candidates:
                if tried:
                    raise NoInstance("no_instance_left", "every healthy instance was tried")
                raise NoInstance("no_healthy_instances", "no healthy instance can take requests")
            loop_time = asyncio.get_running_loop().time()
            if deadline is None:
                deadline = loop_time + self._queue_timeout_s
            remaining = deadline - loop_time
            if remaining <= 0:
                raise NoInstance("at_capacity", "every instance is at capacity")
            waited_from = time.perf_counter()
            try:
                await queue.wait(remaining)
            except QueueFull:
                raise NoInstance("queue_full", "too many requests are waiting") from None
            except TimeoutError:
                raise NoInstance("at_capacity", "every instance is at capacity") from None
            finally:
                self.metrics.queue_wait.observe(time.perf_counter() - waited_from)

    def _release(self, instance: Instance) -> None:
        instance.load.inflight -= 1
        if self.queue:
            self.queue.wake_one()

    # -- the handler -----------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        headers = request.headers
        request_id = headers.get(X_REQUEST_ID) or uuid.uuid4().hex
        status = 0
        instance_id = "-"
        attempts = 0
        try:
            response, instance_id, attempts = await self._proxy(request, request_id)
            status = response.status
            if not response.prepared:  # streamed responses got it with their headers
                response.headers[X_REQUEST_ID] = request_id
            return response
        except asyncio.CancelledError:
            # The client went away and the upstream request was aborted with it; a WebSocket
            # that was already open ended normally when its client hung up.
            upgraded = request.get(_UPGRADED)
            if upgraded is None:
                status = 499
            else:
                status, instance_id, attempts = 101, upgraded, 1
            raise
        except Exception:
            log.exception("proxy_error", request_id=request_id, path=request.path)
            status = 502
            return error_response(
                502,
                "proxy_error",
                "the load balancer failed this request",
                headers={X_REQUEST_ID: request_id},
            )
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.observe_request(instance_id, request.method, status, elapsed)
            if self._access_log:
                log.info(
                    "request",
                    request_id=request_id,
                    method=request.method,
                    path=request.path,
                    instance_id=instance_id,
                    status=status,
                    attempts=attempts,
                    duration_ms=round(elapsed * 1000, 3),
                )

    async def _proxy(
        self, request: web.Request, request_id: str
    ) -> tuple[web.StreamResponse, str, int]:
        headers = request.headers
        header_bytes = 0
        for name, value in request.raw_headers:
            header_bytes += len(name) + len(value)
        if header_bytes > self._max_header_bytes:
            return (
                error_response(431, "headers_too_large", "request headers are too large"),
                "-",
                0,
            )
        length = request.content_length
        if self._max_body and length is not None and length > self._max_body:
            return error_response(413, "body_too_large", "request body is too large"), "-", 0

        method = request.method
        path = request.path
        key = headers.get(X_THREAD_ID)
        key = f"thread:{key}" if key else key_from_path(path)
        creates_work = method == "POST" and path.endswith(("/runs", "/runs/wait", "/runs/stream"))

        upstream_headers = self._forward_headers(request, request_id)
        if headers.get(hdrs.UPGRADE, "").lower() == "websocket":
            return await self._websocket(request, upstream_headers, key)

        # Keep small bodies so a refused request can go elsewhere; stream the rest.
        body: bytes | AsyncIterator[bytes] | None
        replayable = True
        if request.body_exists:
            if length is not None and length <= self._replay_bytes:
                body = await request.read()
            else:
                body = self._stream_body(request)
                replayable = False
        else:
            body = None

        tried: set[str] | None = None
        last: _Attempt | None = None
        attempt = 0
        while attempt < self._attempts:
            attempt += 1
            try:
                instance = await self._acquire(key, creates_work, tried)
            except NoInstance as exc:
                if last is not None:
                    break  # report the worker's failure rather than the empty fleet
                self.metrics.no_instance.labels(exc.code).inc()
                return (
                    error_response(503, exc.code, exc.message, headers=self._retry_after),
                    "-",
                    attempt,
                )
            try:
                response = await self._forward(
                    request, instance, upstream_headers, body, replayable
                )
                if key is not None and 200 <= response.status < 300:
                    self.affinity.pin(key, instance.id)
                return response, instance.id, attempt
            except _Attempt as failure:
                last = failure
                # Streaming bodies cannot be resent once read; idempotency is checked inside.
                if not (failure.retryable and replayable) or attempt >= self._attempts:
                    return self._failed(failure), instance.id, attempt
                if tried is None:
                    tried = set()
                tried.add(instance.id)
                self.metrics.retries.inc()
            except BodyTooLarge:
                return (
                    error_response(413, "body_too_large", "request body is too large"),
                    instance.id,
                    attempt,
                )
            finally:
                self._release(instance)
        assert last is not None
        return self._failed(last), "-", attempt

    def _failed(self, failure: _Attempt) -> web.Response:
        headers = self._retry_after if failure.status == 503 else None
        return error_response(failure.status, failure.code, failure.message, headers=headers)

    def _forward_headers(self, request: web.Request, request_id: str) -> CIMultiDict[str]:
        out = end_to_end_headers(request.headers)
        out.popall(hdrs.HOST, None)  # the client library sets the worker's own
        peer = request.remote or ""
        prior = out.get(X_FORWARDED_FOR)
        out[X_FORWARDED_FOR] = f"{prior}, {peer}" if prior else peer
        out[X_FORWARDED_PROTO] = request.scheme
        out[X_FORWARDED_HOST] = request.host
        out[X_REQUEST_ID] = request_id
        return out

    async def _stream_body(self, request: web.Request) -> AsyncIterator[bytes]:
        limit = self._max_body
        seen = 0
        async for chunk in request.content.iter_chunked(STREAM_CHUNK_BYTES):
            seen += len(chunk)
            if limit and seen > limit:
                raise BodyTooLarge
            yield chunk

    async def _forward(
        self,
        request: web.Request,
        instance: Instance,
        upstream_headers: CIMultiDict[str],
        body: bytes | AsyncIterator[bytes] | None,
        replayable: bool,
    ) -> web.StreamResponse:
        try:
            async with asyncio.timeout(self._first_byte_timeout_s):
                upstream = await self.session.request(
                    request.method,
                    instance.url + request.raw_path,
                    headers=upstream_headers,
                    data=body,
                    allow_redirects=False,
                    timeout=self._timeout,
                )
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # Never reached the worker: always safe to try another.
            self.outliers.failure(instance)
            raise _Attempt(
                502, "upstream_unreachable", f"instance {instance.id} is unreachable", True
            ) from exc
        except TimeoutError as exc:
            raise _Attempt(
                504, "upstream_timeout", f"instance {instance.id} did not answer in time", False
            ) from exc
        except aiohttp.ClientPayloadError as exc:
            if isinstance(exc.__cause__, BodyTooLarge):
                raise BodyTooLarge from exc
            raise _Attempt(
                502, "upstream_error", "the request body could not be sent", False
            ) from exc
        except aiohttp.ClientError as exc:
            if _caused_by(exc, BodyTooLarge):
                raise BodyTooLarge from exc
            # The worker may have received the request: retry only what may be repeated.
            self.outliers.failure(instance)
            raise _Attempt(
                502,
                "upstream_error",
                f"instance {instance.id} failed: {type(exc).__name__}",
                request.method in IDEMPOTENT,
            ) from exc

        try:
            return await self._respond(
                request, instance, upstream, replayable, upstream_headers[X_REQUEST_ID]
            )
        finally:
            upstream.release()

    async def _respond(
        self,
        request: web.Request,
        instance: Instance,
        upstream: aiohttp.ClientResponse,
        replayable: bool,
        request_id: str,
    ) -> web.StreamResponse:
        status = upstream.status
        if status >= 500:
            self.outliers.failure(instance)
        else:
            self.outliers.success(instance)
        length = upstream.content_length
        small = length is not None and length <= SMALL_RESPONSE_BYTES
        if status == 503 and small and replayable:
            body = await upstream.read()
            if _is_at_capacity(body):
                raise _Attempt(503, "at_capacity", "every instance is at capacity", True)
        out_headers = self._response_headers(upstream, instance)
        out_headers[X_REQUEST_ID] = request_id
        if small or request.method == "HEAD" or status in (204, 304):
            body = await upstream.read()
            small_response = web.Response(
                status=status, reason=upstream.reason, headers=out_headers
            )
            if body:
                small_response.body = body
            return small_response
        response = web.StreamResponse(status=status, reason=upstream.reason, headers=out_headers)
        await response.prepare(request)
        try:
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            upstream.close()  # the client is gone: drop the worker's stream with it
            raise
        except aiohttp.ClientPayloadError:
            # The worker broke off mid-body; the status is sent, so cut the client off too.
            upstream.close()
            self.outliers.failure(instance)
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        return response

    def _response_headers(
        self, upstream: aiohttp.ClientResponse, instance: Instance
    ) -> CIMultiDict[str]:
        out = end_to_end_headers(upstream.headers)
        for name in (hdrs.LOCATION, hdrs.CONTENT_LOCATION):
            location = out.get(name)
            if location is not None:
                learned = key_from_location(location)
                if learned is not None:
                    self.affinity.pin(learned, instance.id)
        out[X_FLEET_INSTANCE] = instance.id
        return out

    async def _websocket(
        self, request: web.Request, upstream_headers: CIMultiDict[str], key: str | None
    ) -> tuple[web.StreamResponse, str, int]:
        try:
            instance = await self._acquire(key, False, None)
        except NoInstance as exc:
            return error_response(503, exc.code, exc.message, headers=self._retry_after), "-", 1
        try:
            request[_UPGRADED] = instance.id
            response = await proxy_websocket(request, self.session, instance, upstream_headers)
            return response, instance.id, 1
        finally:
            self._release(instance)


def end_to_end_headers(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """A copy without hop-by-hop headers, including those the Connection header names
    (RFC 9110 section 7.6.1)."""
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        if name not in HOP_BY_HOP:
            out.add(name, value)
    connection = headers.get(hdrs.CONNECTION)
    if connection:
        for token in connection.split(","):
            token = token.strip()
            if token:
                out.popall(token, None)
    return out


def _is_at_capacity(body: bytes) -> bool:
    if b"at_capacity" not in body:
        return False
    try:
        error = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return False
    return isinstance(error, dict) and error.get("code") == "at_capacity"


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
