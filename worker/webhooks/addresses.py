"""Where webhooks may go: public addresses, and the networks ``WORKER_WEBHOOK_ALLOW_NETWORKS``
lets in.

A URL is checked when it is registered (422 when refused) and again at every attempt: the
delivery session resolves names through ``GuardedResolver``, so the address it connects to is
the address that was checked (a DNS answer that changes to a private address after
registration, "DNS rebinding", is refused at delivery). Refused: every address that is not
globally routable (loopback, RFC 1918 private, link-local incl. the cloud metadata address
169.254.169.254, unique-local, shared, reserved), IPv4-mapped IPv6 judged by its IPv4.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

from worker.errors import Unprocessable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port -> the addresses the name resolves to (injected in tests).
Resolve = Callable[[str, int], Awaitable[list[str]]]
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


class AddressRefused(OSError):
    """A webhook host resolved to an address outside what is allowed."""


async def system_resolve(host: str, port: int) -> list[str]:
    """The addresses of ``host`` from the system resolver (getaddrinfo, off the loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def allowed_networks(entries: Sequence[str]) -> tuple[IPNetwork, ...]:
    """``WORKER_WEBHOOK_ALLOW_NETWORKS`` as networks ("loopback" is 127.0.0.0/8 and ::1)."""
    networks: list[IPNetwork] = []
    for entry in entries:
        if entry == "loopback":
            networks += LOOPBACK
        else:
            networks.append(ipaddress.ip_network(entry, strict=False))
    return tuple(networks)


class AddressPolicy:
    """Decides whether a URL, or an address its host resolves to, may receive webhooks."""

    def __init__(self, allow: Sequence[IPNetwork] = (), resolve: Resolve = system_resolve):
        self._allow = tuple(allow)
        self.resolve = resolve

    def refusal(self, address: str) -> str | None:
        """Why ``address`` is refused, or None when it may receive webhooks."""
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in network for network in self._allow):
            return None
        if ip.is_global and not ip.is_multicast:  # is_global counts multicast in
            return None
        kind = (
            "loopback"
            if ip.is_loopback
            else "link-local (cloud metadata)"
            if ip.is_link_local
            else "private"
            if ip.is_private
            else "multicast"
            if ip.is_multicast
            else "non-public"
        )
        return f"{ip} is a {kind} address (allow its network with WORKER_WEBHOOK_ALLOW_NETWORKS)"

    async def check_url(self, url: str) -> None:
        """Refuse (422 ``invalid_webhook``) ``url`` unless it is absolute http(s) and every
        address its host resolves to is allowed."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Unprocessable(
                f"webhook {url!r} is not an absolute http(s) URL", code="invalid_webhook"
            )
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise Unprocessable(f"webhook {url!r} has a bad port", code="invalid_webhook") from None
        try:
            await self.addresses(parts.hostname, port)
        except OSError as exc:
            raise Unprocessable(f"webhook {url!r} refused: {exc}", code="invalid_webhook") from None

    async def addresses(self, host: str, port: int) -> list[str]:
        """The allowed addresses of ``host``; ``AddressRefused`` when any one is not allowed
        (a name with one private answer among public ones is refused whole)."""
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
            addresses = [host]
        except ValueError:
            if host == "localhost" or host.endswith(".localhost"):
                addresses = ["127.0.0.1"]  # RFC 6761: always loopback, whatever DNS says
            else:
                try:
                    addresses = await self.resolve(host, port)
                except OSError as exc:
                    raise AddressRefused(f"cannot resolve {host}: {exc}") from None
        if not addresses:
            raise AddressRefused(f"{host} resolves to no address")
        for address in addresses:
            reason = self.refusal(address)
            if reason is not None:
                raise AddressRefused(f"{host}: {reason}")
        return addresses


class GuardedResolver(AbstractResolver):
    """The delivery session's resolver: answers only with addresses the policy allows."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results: list[ResolveResult] = []
        for address in await self._policy.addresses(host, port):
            ip = ipaddress.ip_address(address)
            results.append(
                ResolveResult(
                    hostname=host,
                    host=address,
                    port=port,
                    family=socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                    proto=0,
                    flags=socket.AI_NUMERICHOST,
                )
            )
        return results

    async def close(self) -> None:
        return None
