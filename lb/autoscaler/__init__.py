"""The autoscaler: a pure policy, a loop that observes and acts, and scaling backends.

May import: ``lb.fleet``, ``lb.routing``, ``lb.metrics``, ``lb.settings`` and ``common``;
never ``lb.proxy``, ``lb.admin`` or ``lb.app``.
"""
