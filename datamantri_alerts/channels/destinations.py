"""Where webhooks may be sent: not to private, link-local or metadata addresses.

A webhook URL comes from configuration that many people can edit; without this guard it could be
used to make the evaluator reach internal services (169.254.169.254, 10.0.0.0/8, ...). Loopback
stays allowed (local relays and tests), and `ALERTS_ALLOW_PRIVATE_WEBHOOKS=1` lifts the guard for
private deployments. The check runs at send time, on every address the host name resolves to.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from urllib.parse import urlsplit

from datamantri_alerts.channels.base import DeliveryError

ALLOW_ENV = "ALERTS_ALLOW_PRIVATE_WEBHOOKS"


def _forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_loopback:
        return None
    if address.is_link_local:
        return "a link-local address"
    if address.is_private or address.is_reserved or address.is_unspecified:
        return "a private address"
    if address.is_multicast:
        return "a multicast address"
    return None


def resolved_addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError):
        # Unresolvable here: the request fails on its own (or a configured proxy resolves it).
        return []
    out = []
    for info in infos:
        try:
            out.append(ipaddress.ip_address(info[4][0].split("%", 1)[0]))
        except ValueError:
            continue
    return out


def check_destination(url: str, environ: Mapping[str, str] | None = None) -> None:
    """Raise a permanent DeliveryError when url's host is, or resolves to, a refused address."""
    env = os.environ if environ is None else environ
    if env.get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes"):
        return
    host = urlsplit(url).hostname or ""
    for address in resolved_addresses(host):
        reason = _forbidden(address)
        if reason:
            shown = host if host == str(address) else f"{host} ({address})"
            raise DeliveryError(
                f"refused to send to {shown}: {reason}; set {ALLOW_ENV}=1 to allow private "
                "webhook destinations",
                retryable=False,
                status="destination",
            )
