"""The load balancer's one shutdown state, shared by everything that behaves differently once
the process has begun to stop."""

from __future__ import annotations


class ShutdownState:
    """Set once, when the process begins to stop; never cleared.

    Readers poll :attr:`begun` (one attribute load on the hot path): the server stops keeping
    client connections alive, the proxy adds ``Connection: close`` to responses, and the admin
    app's ``/ready`` answers 503.
    """

    __slots__ = ("begun",)

    def __init__(self) -> None:
        self.begun = False

    def begin(self) -> None:
        self.begun = True
