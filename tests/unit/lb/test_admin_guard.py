"""The admin guard's rules as tables: which callers, content types and addresses pass."""

from __future__ import annotations

import pytest

from lb.admin_guard import CallerCheck, refused_host
from lb.settings import parse_networks


@pytest.mark.parametrize(
    ("admin_host", "allowed", "host", "ok"),
    [
        ("127.0.0.1", "", "127.0.0.1:8081", True),
        ("127.0.0.1", "", "localhost:8081", True),
        ("127.0.0.1", "", "[::1]:8081", True),
        ("127.0.0.1", "", "LOCALHOST.", True),
        ("127.0.0.1", "", "evil.example:8081", False),
        ("127.0.0.1", "", "127.0.0.1.evil.example", False),
        ("127.0.0.1", "lb.internal", "lb.internal", True),
        ("127.0.0.1", "*", "anything.example", True),
        ("10.0.0.5", "", "10.0.0.5:8081", True),
        ("10.0.0.5", "", "localhost:8081", False),
        ("0.0.0.0", "", "whatever:8081", True),  # a wildcard is reachable by any name
        ("0.0.0.0", "lb.internal", "whatever:8081", False),
        ("127.0.0.1", "", None, True),  # HTTP/1.0: no browser sends it
    ],
)
def test_host(admin_host: str, allowed: str, host: str | None, ok: bool) -> None:
    assert CallerCheck(admin_host, allowed).host_allowed(host) is ok


@pytest.mark.parametrize(
    ("origin", "ok"),
    [
        (None, True),
        ("http://127.0.0.1:8081", True),
        ("http://localhost:3000", True),
        ("https://ops.example", True),
        ("http://evil.example", False),
        ("null", False),
        ("file://", False),
        ("http://[bad", False),
    ],
)
def test_origin(origin: str | None, ok: bool) -> None:
    assert CallerCheck("127.0.0.1", "ops.example").origin_allowed(origin) is ok


@pytest.mark.parametrize(
    ("method", "content_type", "has_body", "refused"),
    [
        ("POST", "application/json", True, False),
        ("POST", "Application/JSON; charset=utf-8", True, False),
        ("POST", "text/plain", True, True),
        ("POST", None, True, True),
        ("PUT", "application/x-www-form-urlencoded", True, True),
        ("POST", None, False, False),
        ("POST", "application/octet-stream", False, False),
        ("POST", "application/x-www-form-urlencoded", False, True),
        ("DELETE", "text/plain;charset=utf-8", False, True),
        ("DELETE", None, False, False),
        ("GET", "text/plain", True, False),
    ],
)
def test_content_type(method: str, content_type: str | None, has_body: bool, refused: bool) -> None:
    assert CallerCheck.content_type_refused(method, content_type, has_body) is refused


@pytest.mark.parametrize(
    ("host", "resolved", "allowed", "refused"),
    [
        ("169.254.169.254", [], "", "169.254.169.254"),
        ("[fe80::1]", [], "", "fe80::1"),
        ("127.0.0.1", [], "", None),
        ("10.0.0.8", [], "", None),
        ("169.254.169.254", [], "169.254.169.254/32", None),
        ("metadata.google.internal", ["169.254.169.254"], "", "169.254.169.254"),
        ("worker.internal", ["10.0.0.8", "fd00:ec2::254"], "", "fd00:ec2::254"),
        ("worker.internal", ["10.0.0.8"], "", None),
        ("localhost", ["127.0.0.1", "::1"], "", None),
    ],
)
async def test_instance_address(
    host: str, resolved: list[str], allowed: str, refused: str | None
) -> None:
    async def resolver(name: str) -> list[str]:
        assert name == host
        return resolved

    assert await refused_host(host, parse_networks(allowed), resolver) == refused


async def test_a_name_that_does_not_resolve_is_not_refused() -> None:
    async def fails(name: str) -> list[str]:
        raise OSError("no such name")

    assert await refused_host("not-yet.internal", (), fails) is None
