"""Which addresses may receive webhooks: a table over the address policy."""

from __future__ import annotations

import pytest

from worker.errors import Unprocessable
from worker.webhooks.addresses import AddressPolicy, AddressRefused, allowed_networks


async def _no_dns(host: str, port: int) -> list[str]:
    raise OSError("no DNS in unit tests")


@pytest.mark.parametrize(
    ("address", "allow", "refused"),
    [
        ("93.184.216.34", [], False),
        ("2606:4700::1111", [], False),
        ("127.0.0.1", [], True),
        ("127.8.9.10", [], True),
        ("::1", [], True),
        ("10.0.0.1", [], True),
        ("172.16.5.4", [], True),
        ("192.168.1.1", [], True),
        ("169.254.169.254", [], True),  # cloud metadata
        ("fd00:ec2::254", [], True),  # AWS metadata over IPv6
        ("100.100.100.200", [], True),  # shared address space (Alibaba metadata)
        ("fe80::1%eth0", [], True),
        ("0.0.0.0", [], True),
        ("::ffff:127.0.0.1", [], True),  # IPv4-mapped: judged by its IPv4
        ("::ffff:93.184.216.34", [], False),
        ("224.0.0.1", [], True),
        ("127.0.0.1", ["loopback"], False),
        ("::1", ["loopback"], False),
        ("10.0.0.1", ["loopback"], True),
        ("10.0.0.1", ["10.0.0.0/8"], False),
        ("10.1.0.1", ["10.0.0.0/16"], True),
        ("169.254.169.254", ["10.0.0.0/8", "loopback"], True),
    ],
)
def test_refusals(address: str, allow: list[str], refused: bool) -> None:
    policy = AddressPolicy(allowed_networks(allow), _no_dns)
    assert (policy.refusal(address) is not None) is refused


async def test_a_name_with_one_private_answer_is_refused_whole() -> None:
    async def dns(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.1"]

    policy = AddressPolicy((), dns)
    with pytest.raises(AddressRefused, match=r"10\.0\.0\.1"):
        await policy.addresses("hooks.example", 443)


@pytest.mark.parametrize(
    "url",
    [
        "https://localhost/x",
        "https://api.localhost/x",
        "http://[::1]:8080/x",
        "http://example.test:99999/x",
        "gopher://example.test/",
        "http:///nohost",
        "",
    ],
)
async def test_urls_refused_without_asking_dns(url: str) -> None:
    with pytest.raises(Unprocessable):
        await AddressPolicy((), _no_dns).check_url(url)
