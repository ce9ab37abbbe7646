"""The TLS side of every HTTP service: one server context, reloaded when its files change.

`ServerTLS` builds the `ssl.SSLContext` that uvicorn serves with (`uvicorn_options`):

- TLS 1.2 minimum (1.3 preferred by both sides when available); TLS 1.2 only with ECDHE
  key exchange and AEAD ciphers (AES-GCM, ChaCha20-Poly1305), TLS 1.3's suites are all
  AEAD; no compression, no renegotiation.
- with `DLR_TLS_CLIENT_CA` (one or more PEM bundles): client certificates are requested
  and verified against those CAs (mutual TLS). A certificate that does not verify
  (unknown CA, expired) fails the handshake; none at all is let through to the per-route
  check (`ingress/transport.py`) unless `DLR_TLS_CLIENT_CERT_REQUIRED`, where the
  handshake fails too. Session resumption is off then, so every connection's certificate
  is verified again (expiry, a CA removed from the bundle).

Rotation without a restart (cert-manager renewing a Secret, or a file replaced by hand):
uvicorn's listening socket keeps the context it was given, the *base*. Every handshake
first runs the base's SNI callback, which at most every `DLR_TLS_RELOAD_S` seconds stats
the certificate, key and CA files; when one of them changed it builds a complete new
context and hands every later handshake to it (`SSLObject.context = new`, Python's
documented way to switch a connection's context during its handshake). A rotation caught
half-written (key not matching the certificate, a file missing) keeps the previous
context, is logged and counted, and is tried again at the next check. Connections already
established keep their session: requests in flight are not touched.

Metrics (`Collector`, registered by each service into its registry):
`dlr_tls_certificate_expiry_timestamp_seconds` (the served certificate's notAfter, to
alert on before it lapses), `dlr_tls_reloads_total{outcome="reloaded"|"failed"}` and
`dlr_tls_handshakes_total{stage="client_hello"|"established"}` (their difference counts
the handshakes refused, e.g. for a client certificate that does not verify).
"""

from __future__ import annotations

import functools
import logging
import os
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as _Collector

from ingress.settings import TransportSettings

__all__ = [
    "TLS12_CIPHERS",
    "Collector",
    "ServerTLS",
    "TLSFiles",
    "active",
    "build_context",
    "check_files",
    "uvicorn_options",
]

log = logging.getLogger("dlr.tls")

#: TLS 1.2 suites: forward secrecy (ECDHE) and AEAD only. TLS 1.3 suites are not set here
#: (OpenSSL's three are all AEAD with forward secrecy).
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
#: A served certificate this close to its notAfter is warned about at (re)load.
EXPIRY_WARNING_S = 14 * 86400


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """What a server context is built from (picklable: uvicorn may start worker processes)."""

    cert: Path
    key: Path | None = None
    client_cas: tuple[Path, ...] = ()
    client_cert_required: bool = False
    reload_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: TransportSettings) -> TLSFiles:
        """The files a service's settings name (its certificate must be set)."""
        if settings.tls_cert is None:
            raise ValueError("DLR_TLS_CERT is not set")
        return cls(
            cert=settings.tls_cert,
            key=settings.tls_key,
            client_cas=settings.client_cas(),
            client_cert_required=settings.tls_client_cert_required,
            reload_s=settings.tls_reload_s,
        )

    def paths(self) -> tuple[Path, ...]:
        """Every file whose change means a reload."""
        return (self.cert, *((self.key,) if self.key else ()), *self.client_cas)


def build_context(files: TLSFiles) -> ssl.SSLContext:
    """A server context from the files; raises (OSError, ssl.SSLError, ValueError) when
    they do not make one."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    ctx.load_cert_chain(files.cert, files.key)
    if files.client_cas:
        for bundle in files.client_cas:
            before = ctx.cert_store_stats()["x509_ca"]
            ctx.load_verify_locations(cafile=bundle)
            if ctx.cert_store_stats()["x509_ca"] == before:
                raise ValueError(f"{bundle}: no CA certificate in this bundle")
        ctx.verify_mode = ssl.CERT_REQUIRED if files.client_cert_required else ssl.CERT_OPTIONAL
        ctx.options |= ssl.OP_NO_TICKET
        ctx.num_tickets = 0
    elif files.client_cert_required:
        raise ValueError("DLR_TLS_CLIENT_CERT_REQUIRED needs DLR_TLS_CLIENT_CA")
    return ctx


def _not_after(cert: Path) -> float:
    """The notAfter (unix seconds) of the first certificate in a PEM file."""
    first = x509.load_pem_x509_certificates(cert.read_bytes())[0]
    return first.not_valid_after_utc.timestamp()


Signature = tuple[tuple[str, int, int, int] | None, ...]


def _signature(paths: tuple[Path, ...]) -> Signature:
    """What identifies the files' current contents (a changed symlink target included)."""
    out: list[tuple[str, int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append(None)
        else:
            out.append((str(path), st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


class ServerTLS:
    """The base context uvicorn serves with, and the reloads behind it."""

    def __init__(self, files: TLSFiles, clock: Callable[[], float] = time.monotonic) -> None:
        self.files = files
        self._clock = clock
        self._signature = _signature(files.paths())
        self.context = build_context(files)
        self.current = self.context
        self.not_after = _not_after(files.cert)
        self.reloads = {"reloaded": 0, "failed": 0}
        #: Handshakes by how far they got: past version negotiation (the SNI callback) /
        #: established (the HTTP protocol saw the connection). The difference is refused
        #: or abandoned handshakes: a client certificate that does not verify, or none
        #: where one is required, no shared cipher.
        self.handshakes = {"client_hello": 0, "established": 0}
        self._next_check = clock() + files.reload_s
        self.context.sni_callback = self._on_client_hello
        self._log_loaded("tls certificate loaded")

    def _log_loaded(self, message: str) -> None:
        left = self.not_after - time.time()
        log.info(
            message,
            extra={
                "cert": str(self.files.cert),
                "not_after": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.not_after)),
                "client_cas": len(self.files.client_cas),
            },
        )
        if left < EXPIRY_WARNING_S:
            log.warning(
                "tls certificate expires soon",
                extra={"cert": str(self.files.cert), "seconds_left": int(left)},
            )

    def _on_client_hello(
        self, ssl_object: ssl.SSLObject, server_name: str | None, base: ssl.SSLContext
    ) -> None:
        """Runs first in every handshake: maybe reload, then serve the current context."""
        self.handshakes["client_hello"] += 1
        try:
            self.poll()
            if self.current is not base:
                ssl_object.context = self.current
        except Exception:  # never fail a handshake because of the reload machinery
            log.exception("tls reload check failed")

    def poll(self) -> None:
        """Check the files when the reload interval has passed since the last check."""
        if self._clock() >= self._next_check:
            self.maybe_reload()

    def maybe_reload(self) -> bool:
        """Reload when a file changed since the last load; True when it did."""
        self._next_check = self._clock() + self.files.reload_s
        signature = _signature(self.files.paths())
        if signature == self._signature:
            return False
        try:
            context = build_context(self.files)
            not_after = _not_after(self.files.cert)
        except (OSError, ssl.SSLError, ValueError, IndexError) as exc:
            self.reloads["failed"] += 1
            log.error(
                "tls files changed but do not load; still serving the previous certificate",
                extra={"cert": str(self.files.cert), "error": str(exc)[:200]},
            )
            return False
        self.current, self.not_after, self._signature = context, not_after, signature
        self.reloads["reloaded"] += 1
        self._log_loaded("tls certificate reloaded")
        return True


#: The ServerTLS of this process (one server per process), for the metrics collector.
_ACTIVE: ServerTLS | None = None


def active() -> ServerTLS | None:
    """This process's ServerTLS, when it serves HTTPS."""
    return _ACTIVE


def _context_factory(files: TLSFiles, config: Any, default: Callable[[], ssl.SSLContext]) -> Any:
    """uvicorn's `ssl_context_factory`: the base context of a new ServerTLS."""
    global _ACTIVE
    _ACTIVE = ServerTLS(files)
    return _ACTIVE.context


def check_files(settings: TransportSettings) -> None:
    """Fail early (ValueError, OSError, ssl.SSLError) on TLS settings that cannot serve."""
    if not settings.tls_enabled:
        if settings.tls_client_ca or settings.tls_client_cert_required:
            raise ValueError("client certificates (DLR_TLS_CLIENT_CA) need DLR_TLS_CERT")
        return
    build_context(TLSFiles.from_settings(settings))


def uvicorn_options(settings: TransportSettings) -> dict[str, Any]:
    """Keyword arguments of `uvicorn.run`/`uvicorn.Config` serving these settings' TLS
    (empty for plain HTTP). The HTTP protocol class fills the ASGI TLS extension with the
    verified client certificate (`ingress/_uvicorn.py`)."""
    check_files(settings)
    if not settings.tls_enabled:
        return {}
    from ingress._uvicorn import TLSHttpToolsProtocol

    files = TLSFiles.from_settings(settings)
    return {
        "ssl_context_factory": functools.partial(_context_factory, files),
        "http": TLSHttpToolsProtocol,
    }


def _families() -> tuple[GaugeMetricFamily, CounterMetricFamily, CounterMetricFamily]:
    expiry = GaugeMetricFamily(
        "dlr_tls_certificate_expiry_timestamp_seconds",
        "notAfter of the served TLS certificate (unix seconds)",
    )
    reloads = CounterMetricFamily(
        "dlr_tls_reloads",
        "Reloads of changed TLS files by outcome (failed = still serving the previous)",
        labels=["outcome"],
    )
    handshakes = CounterMetricFamily(
        "dlr_tls_handshakes",
        "TLS handshakes by stage: client_hello (past version negotiation), established; "
        "the difference was refused (client certificate, cipher) or abandoned",
        labels=["stage"],
    )
    return expiry, reloads, handshakes


class Collector(_Collector):
    """The TLS metrics of this process (no samples when it serves plain HTTP)."""

    def describe(self) -> Iterator[Metric]:
        """The metric families, without samples (what this collector can export)."""
        yield from _families()

    def collect(self) -> Iterator[Metric]:
        server = _ACTIVE
        if server is None:
            return
        server.poll()  # no handshake lately: look at the files anyway
        expiry, reloads, handshakes = _families()
        expiry.add_metric([], server.not_after)
        for outcome, count in sorted(server.reloads.items()):
            reloads.add_metric([outcome], count)
        for stage, count in sorted(server.handshakes.items()):
            handshakes.add_metric([stage], count)
        yield expiry
        yield reloads
        yield handshakes
