"""Reconstructs the URL the provider actually requested, for schemes that sign the URL.

Behind a reverse proxy the app sees its internal address; providers sign the public one.
Order: the configured public base URL; else X-Forwarded-Proto/Host (and Port) when the
direct peer is a configured trusted proxy; else what the request itself says.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.requests import Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(cidrs: Sequence[str]) -> tuple[Network, ...]:
    """CIDR strings to networks; a bare address is a /32 (/128)."""
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip())


def in_networks(address: str, networks: Sequence[Network]) -> bool:
    """True when the address belongs to any network."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_ip(request: Request, trusted: Sequence[Network]) -> str:
    """The provider's address: the peer, or the proxy-reported client when the peer is trusted."""
    peer = request.client.host if request.client else ""
    if trusted and in_networks(peer, trusted):
        forwarded = request.headers.get("x-forwarded-for", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        # Walk from the nearest hop, skipping our own proxies.
        for hop in reversed(hops):
            if not in_networks(hop, trusted):
                return hop
    return peer


def external_url(request: Request, public_base_url: str | None, trusted: Sequence[Network]) -> str:
    """Full URL (scheme, host, port, path, query) as the provider requested it."""
    path = request.url.path
    query = request.url.query
    tail = path + (f"?{query}" if query else "")
    if public_base_url:
        return public_base_url.rstrip("/") + tail
    peer = request.client.host if request.client else ""
    if trusted and in_networks(peer, trusted):
        proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip()
        host = request.headers.get("x-forwarded-host", "").split(",")[0].strip()
        port = request.headers.get("x-forwarded-port", "").split(",")[0].strip()
        if proto or host:
            scheme = proto or request.url.scheme
            netloc = host or request.headers.get("host", request.url.netloc)
            if port and ":" not in netloc.rsplit("]", 1)[-1]:
                default = {"https": "443", "http": "80"}.get(scheme)
                if port != default:
                    netloc = f"{netloc}:{port}"
            return f"{scheme}://{netloc}{tail}"
    return str(request.url)
