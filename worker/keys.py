"""Typed application keys: the components handlers reach through ``request.app``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web
from langgraph.store.base import BaseStore

from worker.graphs import GraphRegistry
from worker.membership import LBRegistration
from worker.metrics import WorkerMetrics
from worker.runs.events import GraphFeed
from worker.runs.manager import RunManager
from worker.runs.peers import PeerCommands
from worker.runs.relay import Relay
from worker.runs.service import RunService
from worker.settings import WorkerSettings
from worker.store.base import SqlTrace, Store
from worker.store.thread_ttl import TTLConfig
from worker.webhooks import Resolve, Webhooks

SETTINGS = web.AppKey("settings", WorkerSettings)
METRICS = web.AppKey("metrics", WorkerMetrics)
FEED = web.AppKey("feed", GraphFeed)
STARTED_AT = web.AppKey("started_at", datetime)
HTTP_SESSION = web.AppKey("http_session", aiohttp.ClientSession)
STORE = web.AppKey("store", Store)
GRAPHS = web.AppKey("graphs", GraphRegistry)
MANAGER = web.AppKey("manager", RunManager)
SERVICE = web.AppKey("service", RunService)
WEBHOOKS = web.AppKey("webhooks", Webhooks)
WEBHOOK_RESOLVE = web.AppKey[Resolve]("webhook_resolve")  # DNS of webhook deliveries
SQL_TRACE = web.AppKey[SqlTrace | None]("sql_trace")  # called with each SQL statement (diagnostics)
RELAY = web.AppKey("relay", Relay)  # a no-op Relay without WORKER_REDIS_URL
PEER_COMMANDS = web.AppKey("peer_commands", PeerCommands)  # stops for others' runs
REGISTRATION = web.AppKey("registration", LBRegistration)  # only with WORKER_LB_ADMIN_URL
MEMORY = web.AppKey("memory", BaseStore)  # LangGraph's store: /store and get_store()
GRAPH_OBJECTS = web.AppKey("graph_objects", dict[str, Any])  # imported, not yet compiled
THREAD_TTL = web.AppKey("thread_ttl", TTLConfig)  # langgraph.json checkpointer.ttl
