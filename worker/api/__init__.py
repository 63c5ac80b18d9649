"""The HTTP layer: handlers, one module per API, each registering its own routes.

May import ``worker.runs``, ``worker.store``, ``worker.keys`` and the modules beside them;
nothing imports it but ``worker.app``. Handlers parse and answer; what a request does to a
run (admission, stop, resume) is ``worker.runs``'s, so two handlers never share logic by
importing each other.
"""
