"""aioresponses for the Kubernetes and Docker Engine APIs, which cannot run here.

aioresponses 0.7.9 builds its fake responses without the ``stream_writer`` that aiohttp 3.12+
requires, so every mocked route gets a response class that supplies an empty one. The helpers
read back what the client really sent: method, path, query, headers and JSON body.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientResponse
from aioresponses import aioresponses
from multidict import CIMultiDict
from yarl import URL

_RESPONSE_PARAMS = inspect.signature(ClientResponse.__init__).parameters


class _NoStreamWriter:
    output_size = 0


class CompatResponse(ClientResponse):
    """A ClientResponse that aioresponses can build on any aiohttp 3.x."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        if "stream_writer" in _RESPONSE_PARAMS:
            kwargs.setdefault("stream_writer", _NoStreamWriter())
        super().__init__(method, url, **kwargs)


@dataclass(frozen=True)
class Sent:
    """One request the client made."""

    method: str
    url: URL
    headers: CIMultiDict[str]
    body: Any  # the JSON body decoded, or None

    @property
    def path(self) -> str:
        return self.url.path

    @property
    def query(self) -> dict[str, str]:
        return dict(self.url.query)


class HttpApi(aioresponses):
    """aioresponses with the compat response class and a flat, ordered log of requests."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sent: list[Sent] = []

    def __enter__(self) -> HttpApi:
        self.start()
        return self

    def add(self, url: Any, method: str = "GET", **kwargs: Any) -> None:  # type: ignore[override]
        kwargs.setdefault("response_class", CompatResponse)
        super().add(url, method=method, **kwargs)

    async def _request_mock(
        self, orig_self: Any, method: str, url: Any, *args: Any, **kwargs: Any
    ) -> Any:
        full = URL(str(orig_self._build_url(url))).update_query(kwargs.get("params") or {})
        data = kwargs.get("data")
        if isinstance(data, bytes | bytearray):
            data = data.decode()
        body = json.loads(data) if isinstance(data, str) and data else None
        headers: CIMultiDict[str] = CIMultiDict(
            {k: str(v) for k, v in (kwargs.get("headers") or {}).items()}
        )
        self.sent.append(Sent(method.upper(), full, headers, body))
        return await super()._request_mock(orig_self, method, url, *args, **kwargs)

    def requests_to(self, method: str, path: str) -> list[Sent]:
        return [s for s in self.sent if s.method == method and s.path == path]

    def only(self, method: str, path: str) -> Sent:
        """The single request with this method and path (fails when there were none or more)."""
        found = self.requests_to(method, path)
        assert len(found) == 1, f"{method} {path}: {len(found)} requests; sent {self.sent}"
        return found[0]
