"""The proxy's entry point: every request the engine parses comes here, is forwarded (see
:mod:`lb.proxy.attempts`), and is accounted for — metrics for every request, one access-log
line when enabled, and a JSON error for anything that fails before a response started.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import unquote, urlsplit

import structlog

from common.contract import FLEET_PREFIX
from lb.fleet.ejection import OutlierDetector
from lb.http.exchange import Exchange, RequestBodyError
from lb.http.shutdown import ShutdownState
from lb.metrics import LBMetrics
from lb.proxy.attempts import Forwarder
from lb.proxy.headers import OutgoingRequest, RequestIds, TrustedProxies, outgoing_request
from lb.proxy.relay import BodyTooLarge, write_error
from lb.proxy.upstreams import Upstreams
from lb.routing.affinity import AffinityTable
from lb.routing.router import Router
from lb.settings import LBSettings

log = structlog.get_logger("lb.proxy")


# The largest body read and dropped with a refused request (larger: the connection closes).
_DROPPED_BODY_MAX = 65536


def _names_fleet_path(target: bytes) -> bool:
    """Whether a request target reaches the workers' ``/fleet/`` paths, as the worker would
    read it: percent-decoded, in origin or absolute form. Most targets are settled by two byte
    scans; only one that could spell the path some other way is parsed."""
    if b"fleet" not in target and b"%" not in target:
        return False
    return unquote(urlsplit(target.decode("latin-1")).path).startswith(FLEET_PREFIX)


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
        shutdown: ShutdownState,
    ) -> None:
        self.metrics = metrics
        self._forwarder = Forwarder(
            router, upstreams, settings, outliers, metrics, affinity, shutdown
        )
        self._ids = RequestIds()
        self._trusted = TrustedProxies(settings.trusted_proxies)
        self._max_body = settings.max_body_bytes
        # Decided once: a disabled access log costs the hot path one attribute test.
        self._access_log = settings.access_log and settings.log_level in ("debug", "info")

    async def serve(self, ex: Exchange) -> None:
        started = time.perf_counter()
        status = 0
        instance_id = "-"
        attempts = 0
        request_id = ""
        request: OutgoingRequest | None = None
        try:
            request = outgoing_request(ex, self._ids, self._trusted)
            request_id = request.request_id
            if _names_fleet_path(ex.target):
                # Calls between workers: no client may make them through the LB. A small
                # body is read and dropped, so the connection can carry the next request.
                if ex.has_body:
                    small = (ex.content_length or 0) <= _DROPPED_BODY_MAX and not ex.chunked
                    if small and not ex.expect_continue:  # (a 100-continue body never comes)
                        await ex.read_body()
                    else:
                        ex.keep_alive = False
                write_error(ex, 404, "not_found", "no such path", request_id)
                status = 404
                return
            if self._max_body and (ex.content_length or 0) > self._max_body:
                write_error(ex, 413, "body_too_large", "request body is too large", request_id)
                ex.keep_alive = False
                status = 413
            else:
                status, instance_id, attempts = await self._forwarder.forward(ex, request)
        except asyncio.CancelledError:
            # The client went away (or shutdown ran out of time); the worker's request was
            # aborted with it. An upgraded connection that ends this way ended normally.
            status = 101 if ex.upgrade and ex.response_started else 499
            raise
        except RequestBodyError as exc:
            # The client's body broke off malformed: its request fails, answered if nothing
            # was sent yet; the connection closes after it.
            status = exc.status
            if not ex.response_started:
                write_error(ex, exc.status, exc.code, exc.message, request_id)
            ex.keep_alive = False
        except (ConnectionError, BodyTooLarge) as exc:
            status = 413 if isinstance(exc, BodyTooLarge) else 499
            if isinstance(exc, BodyTooLarge) and not ex.response_started:
                write_error(ex, 413, "body_too_large", "request body is too large", request_id)
            ex.keep_alive = False
        except Exception:
            log.exception("proxy_error", request_id=request_id, path=ex.path)
            status = 502
            if not ex.response_started:
                message = "the load balancer failed this request"
                write_error(ex, 502, "proxy_error", message, request_id)
            ex.keep_alive = False
        finally:
            elapsed = time.perf_counter() - started
            reason = request.abort_reason if request is not None else None
            self.metrics.observe_request(
                instance_id, ex.method, status, elapsed, aborted=reason is not None
            )
            if self._access_log:
                log.info(
                    "request",
                    request_id=request_id,
                    method=ex.method,
                    path=ex.path,
                    instance_id=instance_id,
                    status=status,
                    outcome="ok" if reason is None else "aborted",
                    reason=reason,
                    attempts=attempts,
                    duration_ms=round(elapsed * 1000, 3),
                )
