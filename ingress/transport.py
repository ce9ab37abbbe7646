"""Per-request transport checks of every HTTP service: HTTPS only, client certificates, HSTS.

What a request's transport was is read from the connection, and from a proxy's headers
only when the direct peer is a trusted proxy (`DLR_TRUSTED_PROXIES`):

- **secure** when the connection itself is TLS (`scope["scheme"] == "https"`), or when a
  trusted proxy says `X-Forwarded-Proto: https` (its last value: the one the nearest proxy
  set; an earlier one may come from the client).
- **client identity**: behind a trusted proxy configured by `DLR_TLS_CLIENT_CERT_FROM_PROXY`,
  the certificate that proxy verified (`xfcc`: Envoy's `X-Forwarded-Client-Cert`, last
  element; `nginx`: `ssl-client-cert`, URL-escaped PEM, only with `ssl-client-verify:
  SUCCESS`); otherwise the certificate the TLS handshake verified, from the ASGI TLS
  extension (`scope["extensions"]["tls"]["client_cert_chain"]`, filled by
  `ingress/_uvicorn.py`). A client's own copy of those headers is never believed.

`TransportPolicy.check` refuses, before anything else of the request is read:
`InsecureTransport` (403 `insecure_transport`) for plain HTTP where HTTPS is required, and
`ForbiddenClientCertificate` (403 `forbidden_client_certificate`) on a route with subject
patterns when the identity is missing, outside its validity (checked on every request, so
a certificate that expires during a kept-alive connection, or a resumed session, stops
working then) or matches none of them. The webhook ingress calls it in its check order;
`TransportSecurity` is the same as an ASGI middleware for any other Starlette service,
which also adds `Strict-Transport-Security` to secure responses.

Patterns (`DLR_<PROVIDER>_CLIENT_CERT_SUBJECTS`, `DLR_API_CLIENT_CERT_SUBJECTS`) are
comma-separated shell-style wildcards (`*`, `?`, `[...]`), each matched against the
subject in RFC 4514 form (`CN=hooks.example.com,O=Example`), against each attribute of it
(`CN=hooks.example.com`), and against each subject alternative name written
`DNS:<name>`, `URI:<uri>`, `IP:<address>` or `email:<address>` (DNS names and e-mail
addresses compare case-insensitively). A comma inside a subject pattern is escaped as
`\\,`.
"""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import unquote

import orjson
from cryptography import x509
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingress.errors import ForbiddenClientCertificate, IngressError, InsecureTransport
from ingress.settings import TransportSettings
from ingress.url import Network, in_networks, parse_networks

__all__ = [
    "PROBE_PATHS",
    "ClientIdentity",
    "SubjectPatterns",
    "TransportPolicy",
    "TransportSecurity",
    "identity_from_der",
    "identity_from_pem",
    "identity_from_xfcc",
    "split_patterns",
]

#: Paths that stay reachable over plain HTTP for probes and scrapers.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

_SAN_TYPES = {"dns": "DNS", "uri": "URI", "ip": "IP", "email": "email"}
_FOLDED = ("DNS", "email")  # compared case-insensitively


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """Who a verified client certificate names, and when it is valid."""

    #: The subject in RFC 4514 form (`CN=a,O=b`), '' when unknown.
    subject: str
    #: Everything a pattern is matched against: the subject, each of its attributes,
    #: each subject alternative name as `TYPE:value`.
    names: tuple[str, ...]
    #: Validity (unix seconds); None when the source does not say (XFCC without `Cert`).
    not_before: float | None = None
    not_after: float | None = None


def _san_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names = [f"DNS:{v.lower()}" for v in san.get_values_for_type(x509.DNSName)]
    names += [f"URI:{v}" for v in san.get_values_for_type(x509.UniformResourceIdentifier)]
    names += [f"IP:{v}" for v in san.get_values_for_type(x509.IPAddress)]
    names += [f"email:{v.lower()}" for v in san.get_values_for_type(x509.RFC822Name)]
    return names


def _subject_names(subject: x509.Name) -> list[str]:
    rfc4514 = subject.rfc4514_string()
    attributes = [attr.rfc4514_string() for rdn in subject.rdns for attr in rdn]
    return [rfc4514, *attributes] if rfc4514 else []


def _from_certificate(cert: x509.Certificate) -> ClientIdentity:
    return ClientIdentity(
        subject=cert.subject.rfc4514_string(),
        names=tuple(_subject_names(cert.subject) + _san_names(cert)),
        not_before=cert.not_valid_before_utc.timestamp(),
        not_after=cert.not_valid_after_utc.timestamp(),
    )


#: Parsed identities by certificate (DER bytes or PEM text). A provider presents the same
#: certificate on every connection; parsing costs ~50 us, a lookup nothing.
_CACHE: dict[bytes | str, ClientIdentity] = {}
_CACHE_MAX = 1024


def _cached(key: bytes | str, parse: Callable[[], x509.Certificate]) -> ClientIdentity:
    hit = _CACHE.get(key)
    if hit is None:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        hit = _CACHE[key] = _from_certificate(parse())
    return hit


def identity_from_der(der: bytes) -> ClientIdentity:
    """The identity of a DER certificate (what the TLS handshake verified)."""
    return _cached(der, lambda: x509.load_der_x509_certificate(der))


def identity_from_pem(pem: str) -> ClientIdentity:
    """The identity of a PEM certificate; ValueError when it is not one."""
    return _cached(pem, lambda: x509.load_pem_x509_certificate(pem.encode()))


def _xfcc_elements(value: str) -> list[list[tuple[str, str]]]:
    """Envoy's `X-Forwarded-Client-Cert`: elements split by `,`, pairs by `;`, values
    optionally double-quoted (with `\\"` inside), separators inside quotes kept."""
    elements: list[list[tuple[str, str]]] = []
    pairs: list[tuple[str, str]] = []
    token: list[str] = []
    quoted = escaped = False

    def end_pair() -> None:
        text = "".join(token).strip()
        token.clear()
        key, sep, val = text.partition("=")
        if sep:
            val = val.strip()
            if len(val) >= 2 and val[0] == val[-1] == '"':
                val = val[1:-1].replace('\\"', '"')
            pairs.append((key.strip().lower(), val))

    for char in value:
        if escaped:
            token.append(char)
            escaped = False
        elif char == "\\" and quoted:
            token.append(char)
            escaped = True
        elif char == '"':
            token.append(char)
            quoted = not quoted
        elif char in ",;" and not quoted:
            end_pair()
            if char == ",":
                elements.append(pairs)
                pairs = []
        else:
            token.append(char)
    end_pair()
    elements.append(pairs)
    return [e for e in elements if e]


def identity_from_xfcc(value: str) -> ClientIdentity | None:
    """The identity in the last element of an `X-Forwarded-Client-Cert` header (the one the
    nearest proxy added): its `Cert` when present (full identity and validity), else its
    `Subject`, `URI` and `DNS` fields. None when the element names no client."""
    elements = _xfcc_elements(value)
    if not elements:
        return None
    pairs = elements[-1]
    for key, val in pairs:
        if key == "cert" and val:
            try:
                return identity_from_pem(unquote(val))
            except ValueError:
                return None
    names: list[str] = []
    subject = ""
    for key, val in pairs:
        if key == "subject" and val:
            try:
                name = x509.Name.from_rfc4514_string(val)
            except ValueError:
                continue  # not RFC 4514: match the SANs only
            subject = name.rfc4514_string()
            names += _subject_names(name)
        elif key == "dns" and val:
            names.append(f"DNS:{val.lower()}")
        elif key == "uri" and val:
            names.append(f"URI:{val}")
    return ClientIdentity(subject=subject, names=tuple(names)) if names else None


def _normalise(pattern: str) -> str:
    kind, sep, rest = pattern.partition(":")
    canonical = _SAN_TYPES.get(kind.lower()) if sep and "=" not in kind else None
    if canonical is None:
        return pattern
    return f"{canonical}:{rest.lower() if canonical in _FOLDED else rest}"


def split_patterns(value: str) -> tuple[str, ...]:
    """A comma-separated pattern list (`\\,` is a comma inside a pattern)."""
    parts = re.split(r"(?<!\\),", value)
    return tuple(p.strip().replace("\\,", ",") for p in parts if p.strip())


@dataclass(frozen=True, slots=True)
class SubjectPatterns:
    """The client certificates one route accepts."""

    patterns: tuple[str, ...]

    @classmethod
    def parse(cls, value: str) -> SubjectPatterns | None:
        """None for an empty setting (no certificate needed)."""
        patterns = tuple(_normalise(p) for p in split_patterns(value))
        return cls(patterns) if patterns else None

    def allows(self, identity: ClientIdentity) -> bool:
        """True when any pattern matches any of the identity's names."""
        return any(fnmatchcase(n, p) for p in self.patterns for n in identity.names)


def _headers(scope: Scope, name: bytes) -> list[str]:
    return [v.decode("latin-1") for k, v in scope["headers"] if k == name]


def _last_value(scope: Scope, name: bytes) -> bytes:
    """The last comma-separated value of the last such header (b'' when absent)."""
    value: bytes
    for key, value in reversed(scope["headers"]):
        if key == name:
            return value.rsplit(b",", 1)[-1].strip().lower()
    return b""


class TransportPolicy:
    """The transport checks of one service, built once from its settings."""

    def __init__(
        self,
        settings: TransportSettings,
        subjects: Mapping[str, SubjectPatterns | None] | None = None,
    ) -> None:
        self.https_required = settings.https_required
        self.trusted: tuple[Network, ...] = parse_networks(settings.trusted_proxies.split(","))
        self.from_proxy = settings.tls_client_cert_from_proxy
        self._peers: dict[str, bool] = {}
        self.subjects = {route: p for route, p in (subjects or {}).items() if p is not None}
        self.hsts_header: tuple[bytes, bytes] | None = (
            (b"strict-transport-security", f"max-age={settings.hsts_max_age_s}".encode())
            if settings.hsts_max_age_s
            else None
        )
        #: Whether `check` can refuse anything at all (the common local case: no).
        self.active = self.https_required or bool(self.subjects)

    def _trusted_peer(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not (self.trusted and client):
            return False
        peer = client[0]
        trusted = self._peers.get(peer)
        if trusted is None:  # parsing the address costs ~10 us; peers are few (the proxies)
            if len(self._peers) >= 4096:
                self._peers.clear()
            trusted = self._peers[peer] = in_networks(peer, self.trusted)
        return trusted

    def secure(self, scope: Scope) -> bool:
        """Whether the request reached us over HTTPS (directly or via a trusted proxy)."""
        if scope.get("scheme") == "https":
            return True
        return self._trusted_peer(scope) and _last_value(scope, b"x-forwarded-proto") == b"https"

    def identity(self, scope: Scope) -> ClientIdentity | None:
        """The verified client certificate's identity, if any (see the module docstring)."""
        if self.from_proxy != "none" and self._trusted_peer(scope):
            return self._proxy_identity(scope)
        tls = (scope.get("extensions") or {}).get("tls") or {}
        chain = tls.get("client_cert_chain")
        if not chain:
            return None
        try:
            return identity_from_pem(chain[0])
        except ValueError:
            return None

    def _proxy_identity(self, scope: Scope) -> ClientIdentity | None:
        if self.from_proxy == "xfcc":
            values = _headers(scope, b"x-forwarded-client-cert")
            return identity_from_xfcc(values[-1]) if values else None
        verify = _headers(scope, b"ssl-client-verify")
        cert = _headers(scope, b"ssl-client-cert")
        if not cert or not verify or verify[-1].strip() != "SUCCESS":
            return None
        try:
            return identity_from_pem(unquote(cert[-1]))
        except ValueError:
            return None

    def check(self, scope: Scope, route: str, secure: bool) -> None:
        """Refuse (raise) what this route does not accept over this transport (`secure`:
        what `secure(scope)` said; callers ask it once for this and `hsts`)."""
        if not self.active:
            return
        if self.https_required and not secure:
            raise InsecureTransport("this endpoint is served over HTTPS only")
        patterns = self.subjects.get(route)
        if patterns is None:
            return
        identity = self.identity(scope)
        if identity is None:
            raise ForbiddenClientCertificate(f"{route} requires a client certificate")
        now = time.time()
        if identity.not_after is not None and now > identity.not_after:
            raise ForbiddenClientCertificate("the client certificate has expired")
        if identity.not_before is not None and now < identity.not_before:
            raise ForbiddenClientCertificate("the client certificate is not valid yet")
        if not patterns.allows(identity):
            raise ForbiddenClientCertificate(
                f"client certificate {identity.subject or identity.names[0]!r} "
                f"is not allowed for {route}"
            )

    def hsts(self, secure: bool) -> tuple[bytes, bytes] | None:
        """The Strict-Transport-Security header for a secure request (None otherwise)."""
        return self.hsts_header if secure else None


class TransportSecurity:
    """ASGI middleware: `TransportPolicy.check` before the app sees the request, refusals as
    `{"error", "detail"}` JSON (reported to `on_refusal` for metrics and logs), and HSTS on
    secure responses. Probe paths pass unchecked."""

    def __init__(
        self,
        app: ASGIApp,
        policy: TransportPolicy,
        route: Callable[[Scope], str],
        on_refusal: Callable[[str, IngressError], None],
        exempt: frozenset[str] = PROBE_PATHS,
    ) -> None:
        self.app = app
        self.policy = policy
        self.route = route
        self.on_refusal = on_refusal
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        secure = self.policy.secure(scope)  # once for both HSTS and the check
        hsts = self.policy.hsts(secure)
        route = self.route(scope)
        try:
            self.policy.check(scope, route, secure)
        except IngressError as exc:
            self.on_refusal(route, exc)
            body = orjson.dumps({"error": exc.code, "detail": exc.detail})
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
            if hsts is not None:
                headers.append(hsts)
            await send({"type": "http.response.start", "status": exc.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        if hsts is None:
            await self.app(scope, receive, send)
            return

        async def send_with_hsts(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), hsts]}
            await send(message)

        await self.app(scope, receive, send_with_hsts)


def tls_extension(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> dict[str, Any]:
    """The ASGI TLS extension of a connection (what `scope["extensions"]["tls"]` holds):
    the verified client certificate as PEM (its subject in RFC 4514) and the TLS version."""
    der = ssl_object.getpeercert(binary_form=True)
    chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
    version = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}.get(ssl_object.version() or "")
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": identity_from_der(der).subject if der else None,
        "client_cert_error": None,
        "tls_version": version,
        "cipher_suite": None,
    }
