"""What the load balancer and the workers agree on, and nothing else.

``lb`` and ``worker`` never import each other; both import this package. It holds:

- ``settings``: environment-first settings loading and the ``--help`` every process shows;
- ``logs``: the structlog set-up both processes use;
- ``urls``: URL redaction for logs;
- ``healthcheck``: the container's HEALTHCHECK for whichever process the image runs;
- ``contract``: the HTTP contract between the two processes beyond plain HTTP (which paths
  create work, which name a thread, the ``at_capacity`` promise, the health body).

It imports nothing from ``lb`` or ``worker``.
"""
