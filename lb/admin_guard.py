"""What keeps the admin API from being driven by someone else's web page or pointed at a cloud's
metadata service.

- **Who may call** (:class:`CallerCheck`): under ``/admin``, the ``Host`` header — and the
  ``Origin`` header when a browser sends one — must name the admin address, a loopback name when
  the admin address is loopback, or a host in ``LB_ADMIN_ALLOWED_HOSTS``. A page that rebinds
  its own DNS name to 127.0.0.1 still sends its own name as ``Host`` and is refused (403); a
  page on another site sends its ``Origin`` and is refused. An admin address that is a wildcard
  (``0.0.0.0``, ``::``; the LB then requires a token) is reachable under any name, so any
  ``Host`` passes unless the list is set.
- **How writes are sent**: a write with a body must say ``application/json`` (415 otherwise),
  and a body-less one (``DELETE``, ``.../drain``) may not claim a form or text type. A page on
  another site can send those types without the browser asking the admin API first (a CORS
  preflight, which it never answers); it cannot send anything else.
- **Where instances may point** (:func:`refused_address`): link-local addresses and the cloud
  metadata endpoints are refused (422) unless ``LB_INSTANCE_ALLOW_NETWORKS`` allows them, so
  the proxy cannot be turned into a way to read instance credentials. Loopback stays allowed
  (a development fleet runs there). A host name is resolved once, at registration: if any of
  its addresses is refused, so is the URL. (DNS may change later; a fleet that must be immune
  to that registers addresses, not names.)
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import Final

from yarl import URL

from lb.settings import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Link-local (where AWS, GCP, Azure and OpenStack serve metadata on 169.254.169.254), Alibaba's
# metadata address, and AWS's IPv6 metadata address.
REFUSED_NETWORKS: Final[tuple[IPNetwork, ...]] = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("100.100.100.200/32"),
    ipaddress.ip_network("fd00:ec2::254/128"),
)
_LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "::1"})
_WILDCARDS: Final = frozenset({"", "0.0.0.0", "::"})
_WRITES: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# What a cross-site form or a CORS "simple request" can send without asking first.
_FORM_TYPES: Final = frozenset(
    {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}
)
RESOLVE_TIMEOUT_S: Final = 2.0


class CallerCheck:
    """Decides from a request's headers whether it may reach ``/admin``."""

    def __init__(self, admin_host: str, allowed_hosts: str) -> None:
        listed = {_bare(h) for h in allowed_hosts.split(",") if h.strip()}
        self.any_host = "*" in listed or (not listed and admin_host in _WILDCARDS)
        allowed = {_bare(admin_host), *listed}
        if _is_loopback(admin_host):
            allowed |= _LOOPBACK_NAMES
        self.allowed = frozenset(allowed)

    def host_allowed(self, host: str | None) -> bool:
        """``Host``: absent only in HTTP/1.0, which no browser sends."""
        return host is None or self.any_host or _bare(_strip_port(host)) in self.allowed

    def origin_allowed(self, origin: str | None) -> bool:
        if origin is None:
            return True
        try:
            parsed = URL(origin)
        except ValueError:
            return False
        if parsed.scheme not in ("http", "https") or not parsed.host:
            return False  # "null" and friends: a sandboxed or opaque origin
        return _bare(parsed.host) in self.allowed or "*" in self.allowed

    @staticmethod
    def content_type_refused(method: str, content_type: str | None, has_body: bool) -> bool:
        """Whether a write must be refused for what it says its body is: a body must be JSON,
        and even a write without one may not claim a type an HTML form can send."""
        if method not in _WRITES:
            return False
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if has_body:
            return media != "application/json"
        return media in _FORM_TYPES


def refused_address(address: IPAddress, allowed: tuple[IPNetwork, ...]) -> bool:
    """Whether an instance may not point at ``address``: a refused range not explicitly allowed
    (an IPv4 address written as IPv6, ``::ffff:169.254.169.254``, counts as the IPv4 one)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback or any(address in network for network in allowed):
        return False
    return any(address in network for network in REFUSED_NETWORKS)


Resolver = Callable[[str], Awaitable[list[str]]]


async def resolve(host: str) -> list[str]:
    """The addresses ``host`` resolves to (the system resolver, bounded in time)."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(RESOLVE_TIMEOUT_S):
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]).split("%", 1)[0] for info in infos]


async def refused_host(
    host: str, allowed: tuple[IPNetwork, ...], resolver: Resolver = resolve
) -> str | None:
    """The refused address ``host`` is or resolves to, or None. A name that does not resolve
    (yet) is not refused: the health check will find it unreachable."""
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return str(literal) if refused_address(literal, allowed) else None
    try:
        addresses = await resolver(host)
    except (OSError, TimeoutError):
        return None
    for text in addresses:
        address = ipaddress.ip_address(text)
        if refused_address(address, allowed):
            return str(address)
    return None


def _strip_port(host: str) -> str:
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() and ":" not in name else host


def _bare(host: str) -> str:
    return host.strip().strip("[]").lower().rstrip(".")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
