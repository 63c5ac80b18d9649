"""The run service: admitting, ordering, driving, stopping and recovering runs.

May import ``worker.store``, ``worker.graphs``, ``worker.errors``, ``worker.metrics`` and
``common``; never the HTTP layer (``worker.api``, ``worker.app``, ``worker.keys``) nor the
services built on it: those hear about runs through ``observers.RunObserver``, and name the
webhook events a status change writes with it through ``outbox.RunOutbox``.

``service.RunService`` creates runs (the order every API shares); ``manager.RunManager``
holds them, put together from ``admission`` (capacity: the one place a run is refused for
it), ``table`` and ``ordering``, ``driver``, ``stopping``, ``persistence``, ``retention``
and ``announce``. ``execution.Execution`` is the simple API's record, ``commands`` the
operations on executions; ``recovery`` the lease heartbeat and the sweeper.
"""
