"""The store API of the LangGraph Server: items of LangGraph's long-term memory store.

``PUT|GET|DELETE /store/items``, ``POST /store/items/search``, ``POST /store/namespaces``,
over the same ``BaseStore`` graphs receive, so what a graph remembers a client can read and
the other way round. Namespaces travel as lists of labels in bodies and as one
dot-separated string in ``GET``'s query; a label is a non-empty string without periods
(422 otherwise), as the official server checks.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from aiohttp import web
from langgraph.store.base import InvalidNamespaceError, Item
from pydantic import BaseModel, ConfigDict, Field

from worker.api.errors import json_response
from worker.api.json_body import json_body
from worker.api.schemas import parse
from worker.errors import BadRequest, Unprocessable
from worker.keys import MEMORY


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class PutBody(_Open):
    namespace: list[str]
    key: str
    value: dict[str, Any]
    index: Any = None
    ttl: float | None = None


class DeleteBody(_Open):
    namespace: list[str] | None = None
    key: str


class SearchBody(_Open):
    namespace_prefix: list[str] | None = None
    filter: dict[str, Any] | None = None
    limit: int = Field(10, ge=0)
    offset: int = Field(0, ge=0)
    query: str | None = None
    refresh_ttl: bool | None = None


class NamespacesBody(_Open):
    prefix: list[str] | None = None
    suffix: list[str] | None = None
    max_depth: int | None = None
    limit: int = Field(100, ge=0)
    offset: int = Field(0, ge=0)


def check_namespace(namespace: tuple[str, ...]) -> tuple[str, ...]:
    """``namespace`` when every label is a non-empty string without periods; 422 if not."""
    for label in namespace:
        if not isinstance(label, str) or not label or "." in label:
            raise Unprocessable(
                f"Namespace label {label!r} must be a non-empty string without periods",
                code="invalid_namespace",
            )
    return namespace


def item_view(item: Item) -> dict[str, Any]:
    """An item as the official server sends it, its timestamps with their UTC offset.

    LangGraph's SQLite store reads SQLite's ``CURRENT_TIMESTAMP`` (UTC, written without an
    offset) as naive datetimes; sent as they are, JavaScript's ``Date`` would take them for
    local time.
    """
    view = item.dict()
    for key, at in (("created_at", item.created_at), ("updated_at", item.updated_at)):
        if at.tzinfo is None:
            view[key] = at.replace(tzinfo=UTC).isoformat()
    return view


def _rejected(exc: InvalidNamespaceError) -> BadRequest:
    # What LangGraph's store itself refuses (an empty namespace, the reserved root label)
    # the official server answers with 400.
    return BadRequest(str(exc), code="invalid_namespace")


async def put_item(request: web.Request) -> web.Response:
    body = parse(PutBody, await json_body(request))
    namespace = check_namespace(tuple(body.namespace))
    try:
        await request.app[MEMORY].aput(
            namespace, body.key, body.value, index=body.index, ttl=body.ttl
        )
    except InvalidNamespaceError as exc:
        raise _rejected(exc) from None
    return web.Response(status=204)


async def get_item(request: web.Request) -> web.Response:
    namespace = check_namespace(tuple(request.query.get("namespace", "").split(".")))
    key = request.query.get("key")
    if not key:
        raise BadRequest("Key is required", code="key_required")
    refresh = request.query.get("refresh_ttl")
    try:
        item = await request.app[MEMORY].aget(
            namespace, key, refresh_ttl=None if refresh is None else refresh.lower() == "true"
        )
    except InvalidNamespaceError as exc:
        raise _rejected(exc) from None
    return json_response(None if item is None else item_view(item))


async def delete_item(request: web.Request) -> web.Response:
    body = parse(DeleteBody, await json_body(request))
    namespace = check_namespace(tuple(body.namespace or ()))
    try:
        await request.app[MEMORY].adelete(namespace, body.key)
    except InvalidNamespaceError as exc:
        raise _rejected(exc) from None
    return web.Response(status=204)


async def search_items(request: web.Request) -> web.Response:
    body = parse(SearchBody, await json_body(request))
    prefix = check_namespace(tuple(body.namespace_prefix or ()))
    try:
        items = await request.app[MEMORY].asearch(
            prefix,
            query=body.query,
            filter=body.filter,
            limit=body.limit,
            offset=body.offset,
            refresh_ttl=body.refresh_ttl,
        )
    except InvalidNamespaceError as exc:
        raise _rejected(exc) from None
    return json_response({"items": [item_view(item) for item in items]})


async def list_namespaces(request: web.Request) -> web.Response:
    body = parse(NamespacesBody, await json_body(request))
    prefix = check_namespace(tuple(body.prefix)) if body.prefix else None
    suffix = check_namespace(tuple(body.suffix)) if body.suffix else None
    try:
        namespaces = await request.app[MEMORY].alist_namespaces(
            prefix=prefix,
            suffix=suffix,
            max_depth=body.max_depth,
            limit=body.limit,
            offset=body.offset,
        )
    except InvalidNamespaceError as exc:
        raise _rejected(exc) from None
    return json_response({"namespaces": [list(ns) for ns in namespaces]})


def add_routes(app: web.Application) -> None:
    app.router.add_put("/store/items", put_item)
    app.router.add_get("/store/items", get_item)
    app.router.add_delete("/store/items", delete_item)
    app.router.add_post("/store/items/search", search_items)
    app.router.add_post("/store/namespaces", list_namespaces)
