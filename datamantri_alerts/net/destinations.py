"""The one destination policy for every outgoing HTTP request: which addresses may be connected to.

URLs come from configuration many people can edit (webhooks, HTTP data sources, the heartbeat, the
Twilio base URL); without this policy they could make the evaluator reach internal services
(`169.254.169.254`, `100.100.100.200`, `10.0.0.0/8`, ...). The policy judges IP addresses, not
names: `net.session` calls `DestinationPolicy.check_address` on every address a host name resolves
to, just before the socket connects, so a name that resolves differently on a second lookup (DNS
rebinding) cannot slip through.

Refused: private (RFC 1918, IPv6 unique-local), carrier-grade NAT (100.64.0.0/10, where clouds put
metadata services), link-local, multicast, reserved, unspecified and every other non-global
address, and IPv6 addresses that embed or translate to a refused IPv4 address (IPv4-mapped
`::ffff:0:0/96`, IPv4-compatible `::/96`, 6to4 `2002::/16`, NAT64 `64:ff9b::/96`, Teredo
`2001::/32`), plus the local-use NAT64 prefix `64:ff9b:1::/48` as a whole. Loopback stays allowed
(local relays and tests). Each purpose has its own opt-out for private deployments:
`ALERTS_ALLOW_PRIVATE_WEBHOOKS=1` (webhooks, Twilio, heartbeat) and
`ALERTS_ALLOW_PRIVATE_DATASOURCES=1` (HTTP data sources).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

WEBHOOKS_ENV = "ALERTS_ALLOW_PRIVATE_WEBHOOKS"
DATASOURCES_ENV = "ALERTS_ALLOW_PRIVATE_DATASOURCES"

_CARRIER_GRADE_NAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_TRUE = ("1", "true", "yes", "on")


class DestinationRefused(Exception):
    """The destination policy refused an address; nothing was sent to it.

    Deliberately not an OSError: HTTP libraries turn OSError from connecting into retryable
    connection errors (and retry them), while a refusal is final.
    """

    def __init__(self, message: str, *, host: str, address: str) -> None:
        super().__init__(message)
        self.host = host
        self.address = address


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[str, list[ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 address embeds or translates to, and the form's name."""
    if address.ipv4_mapped is not None:
        return "an IPv4-mapped address", [address.ipv4_mapped]
    if address in _NAT64_WELL_KNOWN:
        return "a NAT64 address", [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    if address.sixtofour is not None:
        return "a 6to4 address", [address.sixtofour]
    if address.teredo is not None:
        server, client = address.teredo
        return "a Teredo address", [client, server]
    if address in _IPV4_COMPATIBLE and int(address) > 1:  # not :: or ::1
        return "an IPv4-compatible address", [ipaddress.IPv4Address(int(address))]
    return "", []


def refusal_reason(address: IPAddress) -> str | None:
    """Why the policy refuses address ("a link-local address", ...), or None when it is allowed.

    Allowed: loopback and global (publicly routable) addresses, and IPv6 forms whose embedded
    IPv4 addresses are all allowed.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            address = ipaddress.IPv6Address(str(address).split("%", 1)[0])
        form, embedded = _embedded_ipv4(address)
        for inner in embedded:
            reason = refusal_reason(inner)
            if reason:
                return f"{form} of {inner}, {reason}"
        if embedded:
            return None
        if address in _NAT64_LOCAL_USE:
            return "a local-use NAT64 address (64:ff9b:1::/48)"
    if address.is_loopback:
        return None
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_link_local:
        return "a link-local address"
    if address in _CARRIER_GRADE_NAT:
        return "a carrier-grade NAT address (100.64.0.0/10)"
    if address.is_multicast:
        return "a multicast address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "a non-public address"
    return None


@dataclass(frozen=True)
class DestinationPolicy:
    """Where one kind of outgoing request may connect.

    purpose: what is connecting, for messages ("webhook", "data source", "heartbeat").
    allow_env: the variable whose `1` lifts the policy for private deployments.
    allow_private: that variable's value when the policy was built.
    """

    purpose: str
    allow_env: str
    allow_private: bool = False

    @classmethod
    def from_env(
        cls, purpose: str, allow_env: str, environ: Mapping[str, str] | None = None
    ) -> DestinationPolicy:
        env = os.environ if environ is None else environ
        allowed = env.get(allow_env, "").strip().lower() in _TRUE
        return cls(purpose=purpose, allow_env=allow_env, allow_private=allowed)

    def refusal(self, address: IPAddress) -> str | None:
        """Why address is refused under this policy, or None."""
        return None if self.allow_private else refusal_reason(address)

    def check_address(self, host: str, address: IPAddress) -> None:
        """Raise DestinationRefused when address (which host resolved to) is refused."""
        reason = self.refusal(address)
        if reason is None:
            return
        bare = host.strip("[]")
        shown = bare if parse_address(bare) == address else f"{bare} ({address})"
        raise DestinationRefused(
            f"destination policy refused {self.purpose} connection to {shown}: {reason} "
            f"(set {self.allow_env}=1 to allow private {self.purpose} destinations)",
            host=bare,
            address=str(address),
        )

    def check_url(self, url: str) -> None:
        """Check every address url's host resolves to now (used when a proxy does the connecting).

        An unresolvable host passes: the request then fails on its own.
        """
        host = urlsplit(url).hostname or ""
        for address in resolve(host):
            self.check_address(host, address)


def webhook_policy(environ: Mapping[str, str] | None = None) -> DestinationPolicy:
    """The policy of Slack/Teams webhooks and the Twilio API (`ALERTS_ALLOW_PRIVATE_WEBHOOKS`)."""
    return DestinationPolicy.from_env("webhook", WEBHOOKS_ENV, environ)


def heartbeat_policy(environ: Mapping[str, str] | None = None) -> DestinationPolicy:
    """The policy of the heartbeat pings (shares the webhooks' opt-out)."""
    return DestinationPolicy.from_env("heartbeat", WEBHOOKS_ENV, environ)


def datasource_policy(environ: Mapping[str, str] | None = None) -> DestinationPolicy:
    """The policy of HTTP data sources (`ALERTS_ALLOW_PRIVATE_DATASOURCES`)."""
    return DestinationPolicy.from_env("data source", DATASOURCES_ENV, environ)


def parse_address(text: str) -> IPAddress | None:
    """An IP address from a socket address or URL host (brackets and zone id dropped), or None."""
    try:
        return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def resolve(host: str) -> list[IPAddress]:
    """The addresses host is (an IP literal) or resolves to; [] when it does not resolve."""
    literal = parse_address(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    found = (parse_address(str(info[4][0])) for info in infos)
    return [address for address in found if address is not None]
