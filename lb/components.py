"""The parts one load balancer process is made of, and the typed key the admin app finds them by.

Called *components* rather than "fleet": the fleet is the set of worker instances
(:mod:`lb.fleet`); this is the LB's own machinery around it, built once per process by
:func:`lb.app.build_components` and shared by the proxy port and the admin app.

May import: every layer below the app (``lb.http``, ``lb.fleet``, ``lb.routing``,
``lb.proxy``, ``lb.autoscaler``, ``lb.metrics``, ``lb.settings``); never ``lb.app`` or
``lb.admin``, which import it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from lb.autoscaler.loop import Autoscaler
from lb.fleet.control import Membership
from lb.fleet.ejection import OutlierDetector
from lb.fleet.health import HealthChecker
from lb.fleet.redis_registry import RedisRegistry
from lb.fleet.registry import Clock, Registry
from lb.fleet.statefile import StateFileWriter
from lb.http.shutdown import ShutdownState
from lb.metrics import LBMetrics
from lb.proxy.service import Proxy
from lb.proxy.upstreams import Upstreams
from lb.routing.affinity import AffinityTable
from lb.routing.router import Router
from lb.settings import LBSettings


@dataclass
class Components:
    """What the proxy port and the admin app share. Built once per LB process.

    ``shutdown`` is the process's one shutdown state: once begun, the proxy port stops
    accepting and keeping connections alive, responses say ``Connection: close``, and
    ``/ready`` answers 503.
    """

    settings: LBSettings
    registry: Registry
    router: Router
    proxy: Proxy
    upstreams: Upstreams
    health: HealthChecker
    outliers: OutlierDetector
    metrics: LBMetrics
    affinity: AffinityTable
    membership: Membership
    state_file: StateFileWriter
    session: aiohttp.ClientSession
    rng: random.Random
    clock: Clock
    shutdown: ShutdownState
    redis_registry: RedisRegistry | None = None
    autoscaler: Autoscaler | None = None


COMPONENTS = web.AppKey("components", Components)
