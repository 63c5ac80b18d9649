"""Choosing an instance: strategies over a registry snapshot, thread/run affinity, and the
bounded queue of requests waiting for capacity.

May import: ``lb.fleet``, ``lb.metrics``, ``common`` and ``lb.routing`` itself.
"""
