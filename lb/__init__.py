"""The load balancer, in layers; a module imports only its own layer and those below it
(``tests/unit/layout/test_imports.py`` checks this):

- ``lb.settings``, ``lb.errors``, ``lb.gc_policy``: leaves.
- ``lb.http``: the HTTP/1.1 engine; nothing else of the LB.
- ``lb.fleet``: the instances and their state.
- ``lb.metrics``: the Prometheus metrics.
- ``lb.routing``: choosing an instance.
- ``lb.proxy`` and ``lb.autoscaler``: the request path, and scaling the fleet.
- ``lb.components``, ``lb.admin``, ``lb.app``, ``lb.__main__``: assembly and the admin port.
"""
