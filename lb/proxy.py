"""The proxy's request path: route, forward, stream back, and account for every request.

Per request: pick an instance (see :mod:`lb.routing.router`), send the request head and body
to it, and pass the response back — in one write when it is complete on arrival, otherwise piece by
piece straight from the worker's socket to the client's with back-pressure both ways. The
instance's in-flight count is raised when it is chosen and lowered in a ``finally`` after the
last byte, so long streams and WebSockets count for their whole life.

Retry rules: a request that never reached a worker (connect error) may go to another one; a
request a worker received is retried only when its method is idempotent, or when the worker
answered 503 ``at_capacity`` (it promises it did nothing). Either way the body must still be
at hand: bodies up to ``replay_buffer_bytes`` are read first for that reason, larger ones
stream and are never replayed once sent.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import ssl
import time
from typing import Final

import orjson
import structlog
from yarl import URL

from common.contract import creates_work as creates_work_request
from common.contract import is_at_capacity
from lb.fleet.ejection import OutlierDetector
from lb.fleet.registry import Instance
from lb.http.server import ClientConnection, Exchange
from lb.http.upstream import UpstreamConnection, UpstreamError, UpstreamPool
from lb.http.wire import (
    CRLF,
    HOP_BY_HOP,
    LAST_CHUNK,
    chunk,
    connection_tokens,
    json_error,
    reason,
    without_named,
)
from lb.metrics import LBMetrics
from lb.routing.affinity import AffinityTable, key_from_location, key_from_path
from lb.routing.router import NoInstance, Router
from lb.settings import LBSettings

log = structlog.get_logger("lb.proxy")

IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
# A 503 body this small is read to see whether it is the worker's ``at_capacity`` promise.
_AT_CAPACITY_PEEK_BYTES: Final = 65536


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
        self.stale = False  # failed on a kept-alive connection before any byte came back


class Upstreams:
    """A connection pool per instance, created on first use and closed when it leaves."""

    def __init__(self, connect_timeout_s: float) -> None:
        self._connect_timeout_s = connect_timeout_s
        self._pools: dict[str, UpstreamPool] = {}

    def pool(self, instance: Instance) -> UpstreamPool:
        pool = self._pools.get(instance.url)
        if pool is None:
            url = URL(instance.url)
            context = ssl.create_default_context() if url.scheme == "https" else None
            pool = UpstreamPool(
                url.host or "127.0.0.1",
                url.port or (443 if context else 80),
                self._connect_timeout_s,
                asyncio.get_running_loop(),
                ssl_context=context,
            )
            self._pools[instance.url] = pool
        return pool

    def retain(self, urls: set[str]) -> None:
        """Drop the pools of instances that left; their busy connections close when done."""
        for url in [u for u in self._pools if u not in urls]:
            pool = self._pools.pop(url)
            pool.retired = True
            pool.close_idle(float("inf"))

    def close_idle(self, older_than: float) -> None:
        for pool in self._pools.values():
            pool.close_idle(older_than)

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()


class Proxy:
    """Serves each :class:`Exchange` of the proxy port."""

    def __init__(
        self,
        router: Router,
        upstreams: Upstreams,
        settings: LBSettings,
        outliers: OutlierDetector,
        metrics: LBMetrics,
        affinity: AffinityTable,
    ) -> None:
        self.router = router
        self.upstreams = upstreams
        self.outliers = outliers
        self.metrics = metrics
        self.affinity = affinity
        self.closing = False
        self._id_prefix = secrets.token_hex(8)
        self._id_counter = itertools.count(1)
        self._max_body = settings.max_body_bytes
        self._replay_bytes = settings.replay_buffer_bytes
        self._attempts = settings.retries + 1
        self._retry_after_s = settings.retry_after_s
        self._first_byte_timeout_s = settings.first_byte_timeout_s
        # Decided once: a disabled access log costs the hot path one attribute test.
        self._access_log = settings.access_log and settings.log_level in ("debug", "info")

    async def serve(self, ex: Exchange) -> None:
        started = time.perf_counter()
        status = 0
        instance_id = "-"
        attempts = 0
        request_id = ""
        try:
            request_id, head = self._request_head(ex)
            status, instance_id, attempts = await self._serve(ex, request_id, head)
        except asyncio.CancelledError:
            # The client went away (or shutdown ran out of time); the worker's request was
            # aborted with it. An upgraded connection that ends this way ended normally.
            status = 101 if ex.upgrade and ex.response_started else 499
            raise
        except (ConnectionError, BodyTooLarge) as exc:
            status = 413 if isinstance(exc, BodyTooLarge) else 499
            if isinstance(exc, BodyTooLarge) and not ex.response_started:
                self._error(ex, 413, "body_too_large", "request body is too large", request_id)
            ex.keep_alive = False
        except Exception:
            log.exception("proxy_error", request_id=request_id, path=ex.path)
            status = 502
            if not ex.response_started:
                self._error(
                    ex, 502, "proxy_error", "the load balancer failed this request", request_id
                )
            ex.keep_alive = False
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.observe_request(instance_id, ex.method, status, elapsed)
            if self._access_log:
                log.info(
                    "request",
                    request_id=request_id,
                    method=ex.method,
                    path=ex.path,
                    instance_id=instance_id,
                    status=status,
                    attempts=attempts,
                    duration_ms=round(elapsed * 1000, 3),
                )

    def _error(
        self,
        ex: Exchange,
        status: int,
        code: str,
        message: str,
        request_id: str,
        retry_after: bool = False,
    ) -> None:
        ex.write(
            json_error(
                status,
                code,
                message,
                request_id=request_id,
                keep_alive=ex.keep_alive and ex.body_complete,
                retry_after_s=self._retry_after_s if retry_after else None,
                head_only=ex.method == "HEAD",
            )
        )

    def _request_head(self, ex: Exchange) -> tuple[str, bytes]:
        """The request id and the head to send to a worker (the same for every attempt)."""
        request_id = ""
        forwarded_for = b""
        thread_id = b""
        upgrade = b""
        tokens: frozenset[bytes] = frozenset()
        kept: list[bytes] = []
        for name, value in ex.headers:
            lower = name.lower()
            if lower in HOP_BY_HOP:
                if lower == b"connection":
                    tokens |= connection_tokens(value)
                elif lower == b"upgrade":
                    upgrade = value
                continue
            if lower == b"x-request-id":
                request_id = value.decode("latin-1")
                continue
            if lower == b"x-forwarded-for":
                forwarded_for = value
                continue
            if lower == b"expect":
                continue  # answered here (100 Continue) when the body is read
            if lower == b"x-thread-id":
                thread_id = value
            kept.append(name + b": " + value)
        if tokens:
            kept = without_named(kept, tokens)  # named in Connection: hop-by-hop too
        if not request_id:
            # 32 hex digits like a UUID's, unique across LB processes by the random prefix,
            # at a fraction of uuid4()'s cost on the hot path.
            request_id = "%s%016x" % (self._id_prefix, next(self._id_counter))  # noqa: UP031
        peer = ex.conn.peer.encode()
        kept.append(
            b"X-Forwarded-For: " + (forwarded_for + b", " + peer if forwarded_for else peer)
        )
        kept.append(b"X-Forwarded-Proto: http")
        if ex.host:
            kept.append(b"X-Forwarded-Host: " + ex.host)
        kept.append(b"X-Request-ID: " + request_id.encode())
        if ex.chunked:
            kept.append(b"Transfer-Encoding: chunked")
        if ex.upgrade and upgrade:
            kept.append(b"Connection: Upgrade")
            kept.append(b"Upgrade: " + upgrade)
        ex.thread_id = thread_id
        head = b"%s %s HTTP/1.1\r\n%s\r\n\r\n" % (ex.method.encode(), ex.target, CRLF.join(kept))
        return request_id, head

    async def _serve(self, ex: Exchange, request_id: str, head: bytes) -> tuple[int, str, int]:
        if self._max_body and ex.content_length is not None and ex.content_length > self._max_body:
            self._error(ex, 413, "body_too_large", "request body is too large", request_id)
            ex.keep_alive = False
            return 413, "-", 0
        method = ex.method
        path = ex.path
        key = "thread:" + ex.thread_id.decode("latin-1") if ex.thread_id else key_from_path(path)
        creates_work = creates_work_request(method, path)

        body: bytes | None = None
        replayable = True
        if ex.upgrade:
            pass
        elif ex.content_length is not None and ex.content_length <= self._replay_bytes:
            body = await ex.read_body() if ex.content_length else b""
        elif ex.has_body:
            replayable = False

        router = self.router
        tried: set[str] | None = None
        last: _Attempt | None = None
        failed_on = "-"
        attempt = 0
        while attempt < self._attempts:
            attempt += 1
            try:
                instance = await router.acquire(key, creates_work, tried)
            except NoInstance as exc:
                if last is not None:
                    break  # report the worker's failure rather than the empty fleet
                self.metrics.no_instance.labels(exc.code).inc()
                self._error(ex, 503, exc.code, exc.message, request_id, retry_after=True)
                return 503, "-", attempt
            try:
                status = await self._attempt(ex, instance, head, body, replayable, request_id)
                if key is not None and 200 <= status < 300:
                    self.affinity.pin(key, instance.id)
                return status, instance.id, attempt
            except _Attempt as failure:
                last, failed_on = failure, instance.id
                if not (failure.retryable and replayable) or attempt >= self._attempts:
                    break
                if tried is None:
                    tried = set()
                tried.add(instance.id)
                self.metrics.retries.inc()
            finally:
                router.release(instance)
        assert last is not None
        self._error(
            ex, last.status, last.code, last.message, request_id, retry_after=last.status == 503
        )
        return last.status, failed_on, attempt

    async def _attempt(
        self,
        ex: Exchange,
        instance: Instance,
        head: bytes,
        body: bytes | None,
        replayable: bool,
        request_id: str,
    ) -> int:
        pool = self.upstreams.pool(instance)
        try:
            if ex.upgrade:
                conn, reused = await pool.connect(), False  # tunnels never go back to the pool
            else:
                conn, reused = await pool.acquire()
        except UpstreamError as exc:
            # Never reached the worker: always safe to try another.
            self.outliers.failure(instance)
            raise _Attempt(
                502, "upstream_unreachable", f"instance {instance.id} is unreachable", True
            ) from exc
        try:
            return await self._exchange(ex, instance, conn, head, body, replayable, request_id)
        except _Attempt as failure:
            if not (reused and failure.stale and replayable):
                raise
            # A kept-alive connection the worker had just closed: nothing of ours was read
            # (no byte came back), so send it again once, on a fresh connection to the same
            # instance, as browsers and HAProxy do.
            pool.release(conn)
            try:
                conn = await pool.connect()
            except UpstreamError as exc:
                self.outliers.failure(instance)
                raise _Attempt(
                    502, "upstream_unreachable", f"instance {instance.id} is unreachable", True
                ) from exc
            return await self._exchange(ex, instance, conn, head, body, replayable, request_id)
        finally:
            pool.release(conn)

    async def _exchange(
        self,
        ex: Exchange,
        instance: Instance,
        conn: UpstreamConnection,
        head: bytes,
        body: bytes | None,
        replayable: bool,
        request_id: str,
    ) -> int:
        conn.begin(head_only=ex.method == "HEAD")
        if not ex.host:
            # HTTP/1.0 allowed leaving Host out; the HTTP/1.1 request we send may not.
            head = head[:-2] + b"Host: %s:%d\r\n\r\n" % (conn.pool.host.encode(), conn.pool.port)
        try:
            if body is not None or not ex.has_body or ex.upgrade:
                conn.write(head + body if body else head)
            else:
                conn.write(head)
                await self._send_body(ex, conn)
            # Only a connection whose request went out whole may carry another one.
            conn.request_sent = not conn.head_ready or ex.body_complete
            await conn.wait_head(self._first_byte_timeout_s)
        except TimeoutError as exc:
            conn.close()
            raise _Attempt(
                504, "upstream_timeout", f"instance {instance.id} did not answer in time", False
            ) from exc
        except UpstreamError as exc:
            # The worker may have received the request: retry only what may be repeated.
            failure = _Attempt(
                502,
                "upstream_error",
                f"instance {instance.id} failed: {exc}",
                ex.method in IDEMPOTENT,
            )
            failure.stale = not conn.received_any
            if not failure.stale:
                self.outliers.failure(instance)
            raise failure from exc

        status = conn.status
        if status >= 500:
            self.outliers.failure(instance)
            if status == 503 and replayable and await self._is_at_capacity(conn):
                raise _Attempt(503, "at_capacity", "every instance is at capacity", True)
        else:
            self.outliers.success(instance)

        client = ex.conn
        rechunk, response_head = self._response_head(ex, conn, instance, request_id)
        if conn.complete:
            if status == 101 and ex.upgrade:
                ex.write(response_head)
                await self._tunnel(ex, conn)
                return 101
            # The whole response is here: one write.
            body_bytes = conn.take_body()
            if rechunk:
                body_bytes = (chunk(body_bytes) if body_bytes else b"") + LAST_CHUNK
            ex.write(response_head + body_bytes)
            return status
        ex.write(response_head + self._framed(conn.take_body(), rechunk))
        # Stream the rest straight from the worker's socket to the client's.
        conn.sink = (lambda data: client.write(chunk(data))) if rechunk else client.write
        client.feed_backpressure_to(conn)
        try:
            await conn.wait_done()
        except UpstreamError:
            # The worker broke off mid-body; the status is sent, so cut the client off too.
            self.outliers.failure(instance)
            ex.keep_alive = False
            client.close()
            return status
        finally:
            conn.sink = None
            client.on_backpressure = None
        if rechunk:
            client.write(LAST_CHUNK)
        return status

    @staticmethod
    def _framed(data: bytes, rechunk: bool) -> bytes:
        return chunk(data) if rechunk and data else data

    async def _send_body(self, ex: Exchange, conn: UpstreamConnection) -> None:
        limit = self._max_body
        chunked = ex.chunked
        async for piece in ex.iter_body():
            if limit and ex.body_seen > limit:
                conn.close()
                raise BodyTooLarge
            conn.write(chunk(piece) if chunked else piece)
            await conn.drain()
            if conn.head_ready:
                # The worker answered before taking the whole body: pass the answer on and
                # send no more. Neither connection can carry another request after this.
                ex.keep_alive = False
                return
        if chunked:
            conn.write(LAST_CHUNK)

    async def _is_at_capacity(self, conn: UpstreamConnection) -> bool:
        length = _content_length(conn.headers)
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

    def _response_head(
        self, ex: Exchange, conn: UpstreamConnection, instance: Instance, request_id: str
    ) -> tuple[bool, bytes]:
        """The head for the client, and whether the body must be re-chunked."""
        status = conn.status
        tokens: frozenset[bytes] = frozenset()
        kept: list[bytes] = []
        framed = False
        chunked = False
        upgrade = b""
        for name, value in conn.headers:
            lower = name.lower()
            if lower in HOP_BY_HOP:
                if lower == b"connection":
                    tokens |= connection_tokens(value)
                elif lower == b"transfer-encoding":
                    chunked = True
                elif lower == b"upgrade":
                    upgrade = value
                continue
            if lower == b"content-length":
                framed = True
            elif lower == b"location" or lower == b"content-location":
                learned = key_from_location(value.decode("latin-1"))
                if learned is not None:
                    self.affinity.pin(learned, instance.id)
            elif lower == b"x-request-id":
                continue  # ours is added below (the worker echoes the same one)
            kept.append(name + b": " + value)
        if tokens:
            kept = without_named(kept, tokens)
        kept.append(b"X-Fleet-Instance: " + instance.id.encode())
        kept.append(b"X-Request-ID: " + request_id.encode())
        rechunk = False
        no_body = ex.method == "HEAD" or status in (204, 304) or status < 200
        if status == 101:
            kept.append(b"Connection: Upgrade")
            kept.append(b"Upgrade: " + upgrade)
        elif not framed and not no_body:
            if chunked and ex.version == "1.1":
                kept.append(b"Transfer-Encoding: chunked")
                rechunk = True
            else:
                ex.keep_alive = False  # the body ends when the connection closes
        if not ex.keep_alive or self.closing:
            ex.keep_alive = False
            kept.append(b"Connection: close")
        elif ex.version == "1.0":
            kept.append(b"Connection: keep-alive")  # a 1.0 client closes unless told
        status_line = b"HTTP/1.1 %d %s\r\n" % (status, conn.reason or reason(status))
        return rechunk, status_line + CRLF.join(kept) + b"\r\n\r\n"

    async def _tunnel(self, ex: Exchange, conn: UpstreamConnection) -> None:
        """After a 101, pass bytes both ways untouched until either side closes."""
        client: ClientConnection = ex.conn
        closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def upstream_closed() -> None:
            if not closed.done():
                closed.set_result(None)

        ex.keep_alive = False
        conn.on_close = upstream_closed
        conn.tunnel = client.write
        client.tunnel = conn.write
        client.feed_backpressure_to(conn)
        conn.feed_backpressure_to(client)
        if conn.upgrade_tail:
            client.write(conn.upgrade_tail)
        if ex.upgrade_tail:
            conn.write(ex.upgrade_tail)
        client.resume_reading()
        try:
            if not conn.closed:
                await closed
        finally:
            client.on_backpressure = None
            conn.on_backpressure = None
            conn.close()
            client.close()


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
