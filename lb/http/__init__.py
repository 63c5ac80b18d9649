"""The HTTP/1.1 engine: the client-facing server, the worker-facing connection pools, and the
wire helpers they share, on llhttp (httptools).

It knows nothing of instances, routing or policy: it parses, frames and moves bytes with
back-pressure. May import: only ``lb.http`` itself (and the standard library, httptools).
"""
