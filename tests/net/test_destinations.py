"""The destination policy: which addresses are refused, judged on the address connected to."""

from __future__ import annotations

import ipaddress

import pytest
import requests

from datamantri_alerts.net.destinations import (
    DATASOURCES_ENV,
    WEBHOOKS_ENV,
    DestinationPolicy,
    DestinationRefused,
    datasource_policy,
    heartbeat_policy,
    refusal_reason,
    webhook_policy,
)
from datamantri_alerts.net.session import guarded_session
from tests.checks.servers import http_server
from tests.net.fixtures import FakeDNS

# (address, what the refusal says) - plain ranges first, then IPv6 forms embedding or
# translating to a refused IPv4 address.
REFUSED = [
    ("10.1.2.3", "a private address"),
    ("172.16.0.9", "a private address"),
    ("192.168.1.20", "a private address"),
    ("169.254.169.254", "a link-local address"),
    ("100.100.100.200", "a carrier-grade NAT address (100.64.0.0/10)"),
    ("100.64.0.1", "a carrier-grade NAT address"),
    ("100.127.255.254", "a carrier-grade NAT address"),
    ("0.0.0.0", "the unspecified address"),
    ("224.0.0.251", "a multicast address"),
    ("240.0.0.1", "a reserved address"),
    ("255.255.255.255", "a reserved address"),
    ("192.0.2.10", "a private address"),
    ("198.18.0.1", "a private address"),
    ("fe80::1", "a link-local address"),
    ("fd00:ec2::254", "a private address"),
    ("ff02::1", "a multicast address"),
    ("::", "the unspecified address"),
    ("::ffff:169.254.169.254", "an IPv4-mapped address of 169.254.169.254, a link-local"),
    ("::ffff:100.100.100.200", "an IPv4-mapped address of 100.100.100.200, a carrier-grade"),
    ("::ffff:10.0.0.1", "an IPv4-mapped address of 10.0.0.1, a private address"),
    ("::169.254.169.254", "an IPv4-compatible address of 169.254.169.254"),
    ("::10.0.0.1", "an IPv4-compatible address of 10.0.0.1"),
    ("2002:a9fe:a9fe::1", "a 6to4 address of 169.254.169.254"),
    ("2002:0a00:0001::1", "a 6to4 address of 10.0.0.1"),
    ("2002:6464:64c8::", "a 6to4 address of 100.100.100.200"),
    ("64:ff9b::169.254.169.254", "a NAT64 address of 169.254.169.254"),
    ("64:ff9b::10.0.0.1", "a NAT64 address of 10.0.0.1"),
    ("64:ff9b::100.100.100.200", "a NAT64 address of 100.100.100.200"),
    ("64:ff9b:1::a9fe:a9fe", "a local-use NAT64 address (64:ff9b:1::/48)"),
    ("64:ff9b:1:ffff::1", "a local-use NAT64 address"),
    # Teredo client addresses are stored inverted: f5ff:fffe is 10.0.0.1, 5601:5601 the metadata.
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "a Teredo address of 10.0.0.1"),
    ("2001:0:4136:e378:8000:63bf:5601:5601", "a Teredo address of 169.254.169.254"),
]

ALLOWED = [
    "127.0.0.1",
    "127.8.9.10",
    "::1",
    "::ffff:127.0.0.1",
    "8.8.8.8",
    "100.128.0.1",  # just past 100.64.0.0/10
    "100.63.255.255",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",
    "64:ff9b::8.8.8.8",
    "2002:0808:0808::1",
    "2001:0:4136:e378:8000:63bf:f7f7:f7f7",  # Teredo of 8.8.8.8 via a public server
]


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_refused_ranges(address: str, reason: str) -> None:
    found = refusal_reason(ipaddress.ip_address(address))
    assert found is not None and found.startswith(reason), found


@pytest.mark.parametrize("address", ALLOWED)
def test_allowed_addresses(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is None


def _url(address: str, port: int = 9) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}/latest/meta-data/"


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_every_refused_form_is_refused_before_connecting(
    address: str, reason: str, connects: list[str]
) -> None:
    with guarded_session(webhook_policy({})) as session, pytest.raises(DestinationRefused) as got:
        session.get(_url(address), timeout=2)
    assert reason in str(got.value)
    assert "destination policy refused webhook connection" in str(got.value)
    assert f"set {WEBHOOKS_ENV}=1" in str(got.value)
    assert "meta-data" not in str(got.value)  # the path is not echoed
    assert connects == []


def test_rebinding_name_is_refused_at_connect(fake_dns: FakeDNS, connects: list[str]) -> None:
    """First lookup loopback (passes any check made then), later ones the metadata address."""
    with http_server() as base:
        port = int(base.rsplit(":", 1)[1])
        fake_dns.add("rebind.test", ["127.0.0.1"], ["169.254.169.254"])
        policy = webhook_policy({})
        policy.check_url(f"http://rebind.test:{port}/")  # a check ahead of time sees loopback
        with guarded_session(policy) as session, pytest.raises(DestinationRefused) as got:
            session.get(f"http://rebind.test:{port}/health", timeout=5)
    assert "rebind.test (169.254.169.254): a link-local address" in str(got.value)
    assert fake_dns.lookups == ["rebind.test", "rebind.test"]
    assert "169.254.169.254" not in connects and connects == []


def test_connection_goes_to_the_address_that_was_checked(
    fake_dns: FakeDNS, connects: list[str]
) -> None:
    """One lookup per connection: checked and connected address are the same answer."""
    with http_server() as base:
        port = int(base.rsplit(":", 1)[1])
        fake_dns.add("flip.test", ["127.0.0.1"], ["169.254.169.254"])
        with guarded_session(webhook_policy({})) as session:
            assert session.get(f"http://flip.test:{port}/health", timeout=5).status_code == 200
        with guarded_session(webhook_policy({})) as session, pytest.raises(DestinationRefused):
            session.get(f"http://flip.test:{port}/health", timeout=5)
    assert connects == ["127.0.0.1"]


def test_any_refused_address_of_a_name_refuses_it(fake_dns: FakeDNS, connects: list[str]) -> None:
    with http_server() as base:
        port = int(base.rsplit(":", 1)[1])
        fake_dns.add("mixed.test", ["127.0.0.1", "100.100.100.200"])
        with guarded_session(webhook_policy({})) as session, pytest.raises(DestinationRefused):
            session.get(f"http://mixed.test:{port}/", timeout=5)
    assert connects == []


def test_loopback_allowed(connects: list[str]) -> None:
    with http_server() as base, guarded_session(webhook_policy({})) as session:
        port = base.rsplit(":", 1)[1]
        for host in ("127.0.0.1", "localhost"):
            assert session.get(f"http://{host}:{port}/health", timeout=5).status_code == 200
    assert connects and all(ipaddress.ip_address(a).is_loopback for a in connects)


@pytest.mark.parametrize(
    ("make", "env"),
    [
        (webhook_policy, WEBHOOKS_ENV),
        (heartbeat_policy, WEBHOOKS_ENV),
        (datasource_policy, DATASOURCES_ENV),
    ],
)
def test_opt_out_lifts_only_its_own_policy(make: object, env: str) -> None:
    """0.0.0.0 is refused; with the opt-out it is connected to (Linux sends it to loopback)."""
    other = DATASOURCES_ENV if env == WEBHOOKS_ENV else WEBHOOKS_ENV
    build = make  # type: ignore[assignment]
    with http_server() as base:
        url = base.replace("127.0.0.1", "0.0.0.0") + "/health"
        with guarded_session(build({other: "1"})) as session, pytest.raises(DestinationRefused):
            session.get(url, timeout=5)
        with guarded_session(build({env: "1"})) as session:
            assert session.get(url, timeout=5).status_code == 200
    for address, _reason in REFUSED:
        assert build({env: "1"}).refusal(ipaddress.ip_address(address)) is None


def test_redirects_are_never_followed(connects: list[str]) -> None:
    with http_server() as base, guarded_session(webhook_policy({})) as session:
        reply = session.get(f"{base}/redirect?to=/health", timeout=5, allow_redirects=True)
        assert reply.status_code == 302 and reply.history == []
        assert reply.headers["Location"] == "/health"
        assert reply.next is None
    assert len(connects) == 1


def test_a_session_always_has_a_timeout() -> None:
    """A caller that forgot the timeout still gets one (a black-holed host cannot hang us)."""
    policy = DestinationPolicy("webhook", WEBHOOKS_ENV)
    with guarded_session(policy) as session:
        sent: dict[str, object] = {}
        session.hooks["response"].append(lambda r, **kw: sent.update(kw))
        with http_server() as base:
            session.get(f"{base}/health")
    assert sent["timeout"] == (5.0, 15.0)


def test_proxied_requests_check_the_destination_name(fake_dns: FakeDNS) -> None:
    """Through a proxy the proxy connects; the destination's addresses are checked before."""
    fake_dns.add("metadata.test", ["169.254.169.254"])
    with guarded_session(webhook_policy({})) as session, pytest.raises(DestinationRefused):
        session.get(
            "http://metadata.test/latest/",
            proxies={"http": "http://127.0.0.1:9"},
            timeout=2,
        )
    with guarded_session(webhook_policy({})) as session, pytest.raises(requests.ConnectionError):
        session.get("http://127.0.0.1:9/", proxies={"http": "http://127.0.0.1:9"}, timeout=2)


@pytest.mark.parametrize(
    "host",
    [
        "2852039166",
        "0xa9.0xfe.0xa9.0xfe",
        "0251.0376.0251.0376",
        "169.254.43518",
    ],
)
def test_other_spellings_of_the_metadata_address_are_refused(
    host: str, connects: list[str]
) -> None:
    """Decimal, hex, octal and short forms resolve to 169.254.169.254: judged after resolving."""
    with (
        guarded_session(datasource_policy({})) as session,
        pytest.raises(DestinationRefused) as got,
    ):
        session.get(f"http://{host}/latest/meta-data/", timeout=2)
    assert "(169.254.169.254): a link-local address" in str(got.value)
    assert connects == []
