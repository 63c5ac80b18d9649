"""The proxy: what the load balancer does with each request the engine parses.

Split along its jobs: :mod:`~lb.proxy.headers` (header policy: what is forwarded, added and
stripped, and the routing key, in one pass over each head), :mod:`~lb.proxy.attempts` (which
instance, how many tries, what may be retried), :mod:`~lb.proxy.relay` (moving bodies: whole,
streamed, or tunnelled after a 101), :mod:`~lb.proxy.upstreams` (a connection pool per
instance) and :mod:`~lb.proxy.service` (the entry point: errors, metrics, the access log).

May import: ``lb.http``, ``lb.routing``, ``lb.fleet``, ``lb.metrics``, ``lb.settings`` and
``common``; never ``lb.app``, ``lb.admin`` or ``lb.autoscaler``.
"""
