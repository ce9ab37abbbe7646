"""Reconstructs the URL the provider actually requested, for schemes that sign the URL.

Behind a reverse proxy the app sees its internal address; providers sign the public one.
Order: the configured public base URL; else X-Forwarded-Proto/Host (and Port) when the
direct peer is a configured trusted proxy; else what the request itself says.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.datastructures import URL, Headers
from starlette.types import Scope

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


def client_ip(scope: Scope, trusted: Sequence[Network]) -> str:
    """The provider's address: the peer, or the proxy-reported client when the peer is trusted."""
    client = scope.get("client")
    peer: str = client[0] if client else ""
    if trusted and in_networks(peer, trusted):
        forwarded = Headers(scope=scope).get("x-forwarded-for", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        # Walk from the nearest hop, skipping our own proxies.
        for hop in reversed(hops):
            if not in_networks(hop, trusted):
                return hop
    return peer


#: Request URLs by the scope parts they are built from: building Starlette's `URL` costs
#: more than verifying an HMAC, and webhooks arrive again and again at the same few URLs.
_URLS: dict[tuple[object, ...], tuple[str, str]] = {}
_URLS_MAX = 4096


def _request_url(scope: Scope) -> tuple[str, str]:
    """(full URL, path + query) exactly as Starlette reconstructs them, memoized."""
    host = next((v for k, v in scope["headers"] if k == b"host"), None)
    server = scope.get("server")
    query = scope.get("query_string")
    key = (scope.get("scheme"), server and tuple(server), scope["path"], query, host)
    hit = _URLS.get(key)
    if hit is None:
        url = URL(scope=scope)
        hit = (str(url), url.path + (f"?{url.query}" if url.query else ""))
        if len(_URLS) >= _URLS_MAX:
            _URLS.clear()
        _URLS[key] = hit
    return hit


def external_url(scope: Scope, public_base_url: str | None, trusted: Sequence[Network]) -> str:
    """Full URL (scheme, host, port, path, query) as the provider requested it."""
    full, tail = _request_url(scope)
    if public_base_url:
        return public_base_url.rstrip("/") + tail
    client = scope.get("client")
    peer = client[0] if client else ""
    if trusted and in_networks(peer, trusted):
        headers = Headers(scope=scope)
        proto = headers.get("x-forwarded-proto", "").split(",")[0].strip()
        host = headers.get("x-forwarded-host", "").split(",")[0].strip()
        port = headers.get("x-forwarded-port", "").split(",")[0].strip()
        if proto or host:
            url = URL(scope=scope)
            scheme = proto or url.scheme
            netloc = host or headers.get("host", url.netloc)
            if port and ":" not in netloc.rsplit("]", 1)[-1]:
                default = {"https": "443", "http": "80"}.get(scheme)
                if port != default:
                    netloc = f"{netloc}:{port}"
            return f"{scheme}://{netloc}{tail}"
    return full
