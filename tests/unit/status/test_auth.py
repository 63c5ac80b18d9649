"""Status page sessions: expiry on an injected clock, bounded count, CSRF."""

from __future__ import annotations

import itertools

from lb.status.auth import BAD_CSRF, MAX_SESSIONS, NO_SESSION, SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _store(clock: Clock) -> SessionStore:
    counter = itertools.count()
    return SessionStore(60.0, clock=clock, token=lambda: f"t{next(counter)}")


def test_a_session_lives_until_its_ttl() -> None:
    clock = Clock()
    store = _store(clock)
    session = store.create()
    clock.now = 59.9
    assert store.get(session.id) == session
    clock.now = 60.0
    assert store.get(session.id) is None
    assert len(store) == 0


def test_unknown_empty_and_huge_ids_have_no_session() -> None:
    store = _store(Clock())
    store.create()
    assert store.get(None) is None
    assert store.get("") is None
    assert store.get("nope") is None
    assert store.get("x" * 10_000) is None


def test_reads_need_a_session_and_writes_its_csrf_token() -> None:
    store = _store(Clock())
    session = store.create()
    assert store.authorize("GET", None, None) == NO_SESSION
    assert store.authorize("GET", session.id, None) is None
    assert store.authorize("POST", session.id, None) == BAD_CSRF
    assert store.authorize("POST", session.id, session.csrf_token + "x") == BAD_CSRF
    assert store.authorize("DELETE", session.id, "é") == BAD_CSRF
    assert store.authorize("PUT", session.id, session.csrf_token) is None
    store.delete(session.id)
    assert store.authorize("PUT", session.id, session.csrf_token) == NO_SESSION


def test_sessions_are_bounded_and_expired_ones_go_first() -> None:
    clock = Clock()
    store = _store(clock)
    first = store.create()
    for _ in range(MAX_SESSIONS + 10):
        store.create()
    assert len(store) == MAX_SESSIONS
    assert store.get(first.id) is None  # the oldest went
    clock.now = 61.0
    store.create()
    assert len(store) == 1
