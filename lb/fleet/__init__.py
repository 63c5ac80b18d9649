"""The instances and their state: the copy-on-write registry, membership (register, drain,
remove), health checks, outlier ejection, the state file and the Redis-shared registry.

May import: ``lb.settings``, ``common`` and ``lb.fleet`` itself; nothing that routes or serves.
"""
