"""The ingress's settings: where it listens, how it verifies, what it refuses.

`TransportSettings` is what every HTTP service of the project reads about its transport
(TLS files, client certificates, HTTPS-only, trusted proxies): the ingress, the sender's
API and any later Starlette service extend it. `IngressSettings` adds the webhook
ingress's own. Both extend the shared `CommonSettings` (Kafka, topics); a field `x` is
`DLR_X`. Built once by `dlr ingress` (or by `create_app()` from the environment under
`uvicorn --factory`) and passed down; nothing here does I/O.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from schemas.settings import CommonSettings, split_list

__all__ = ["IngressSettings", "TransportSettings"]


class TransportSettings(CommonSettings):
    """How an HTTP service of the project is reached: TLS, client certificates, HTTPS-only.

    Read by `ingress/tls.py` (the server's TLS context) and `ingress/transport.py` (the
    per-request checks). Field name `x` is environment variable `DLR_X`.
    """

    tls_cert: Path | None = Field(
        None, description="PEM certificate chain to serve HTTPS with (reloaded when it changes)."
    )
    tls_key: Path | None = Field(
        None, description="PEM private key of tls_cert (unset: the key is in the tls_cert file)."
    )
    tls_client_ca: str = Field(
        "",
        description="Comma-separated PEM CA bundles: client certificates are requested and "
        "verified against them (mutual TLS); reloaded when they change.",
    )
    tls_client_cert_required: bool = Field(
        False,
        description="Every connection must present a client certificate the CAs verify: the "
        "handshake fails otherwise (probes then need one too).",
    )
    tls_reload_s: float = Field(
        10.0, gt=0, description="How often the TLS files are checked for a change (seconds)."
    )
    tls_client_cert_from_proxy: Literal["none", "xfcc", "nginx"] = Field(
        "none",
        description="Where a TLS-terminating trusted proxy puts the client certificate it "
        "verified: `xfcc` (Envoy X-Forwarded-Client-Cert), `nginx` (ssl-client-cert and "
        "ssl-client-verify), `none` (never believe one).",
    )
    require_https: bool | None = Field(
        None,
        description="Refuse requests that did not arrive over HTTPS (403 insecure_transport); "
        "unset: on unless dev_secrets (local mode).",
    )
    hsts_max_age_s: int = Field(
        31_536_000, ge=0, description="Strict-Transport-Security max-age on HTTPS; 0 = none."
    )
    trusted_proxies: str = Field(
        "",
        description="CIDRs whose X-Forwarded-* (and client-certificate) headers are trusted.",
    )
    dev_secrets: bool = Field(
        False,
        description="Local mode (dlr up): development credentials and API key kept under "
        "data_dir, plain HTTP accepted.",
    )

    @property
    def https_required(self) -> bool:
        """Whether plain-HTTP requests are refused (explicit, else outside local mode)."""
        return self.require_https if self.require_https is not None else not self.dev_secrets

    @property
    def tls_enabled(self) -> bool:
        """Whether this service serves HTTPS itself."""
        return self.tls_cert is not None

    def client_cas(self) -> tuple[Path, ...]:
        """The client CA bundle paths."""
        return tuple(Path(p) for p in split_list(self.tls_client_ca))


class IngressSettings(TransportSettings):
    """Everything the webhook ingress reads. Field name `x` is environment variable `DLR_X`."""

    ingress_host: str = "127.0.0.1"
    ingress_port: int = 8080
    ingress_compiled: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Serve the webhook path mypyc compiled (`dlr compile`): auto = when the "
        "build matches the sources, on = refuse to start without it, off = pure Python.",
    )
    public_base_url: str | None = Field(
        None, description="Externally visible base URL (scheme://host[:port]) for signed URLs."
    )
    replay_window_s: float = Field(300.0, gt=0)
    max_body_bytes: int = Field(256 * 1024, gt=0)
    capture_refused: bool = Field(
        False,
        description="Keep refused requests on the refused topic (fire-and-forget, no "
        "credential or signature headers, body truncated) for `dlr capture --refused`.",
    )
    refused_body_bytes: int = Field(
        2048, ge=0, description="How much of a refused request's body is kept."
    )
    produce_timeout_s: float = Field(5.0, gt=0, description="Kafka ack bound before a 503.")
    produce_linger_ms: float = Field(
        2.0,
        ge=0,
        le=1000,
        description="How long librdkafka lets a partition's records gather before it sends "
        "them: fewer produce requests and wake-ups per record for at most this much latency.",
    )
    produce_reports: Literal["wakeup", "poll"] = Field(
        "wakeup",
        description="How the event loop learns that Kafka acknowledged records: 'wakeup', "
        "librdkafka writes to a pipe the loop watches (falls back to 'poll' where "
        "ingress/_rdkafka.py cannot vouch for the installed confluent-kafka); 'poll', the "
        "loop polls (DLR_PRODUCE_POLL_MS).",
    )
    produce_poll_ms: float = Field(
        1.0,
        ge=1,
        le=100,
        description="With DLR_PRODUCE_REPORTS=poll: how often the event loop collects Kafka's "
        "acknowledgements while 1-7 records wait and no request comes in (each request "
        "collects them too; from 8 waiting, every turn of the loop does). uvloop's "
        "timers count whole milliseconds: 1 is the shortest interval that is not a busy loop.",
    )
    rate_limit_per_s: float = Field(0.0, ge=0, description="Per-provider requests/s; 0 = off.")
    rate_limit_burst: int = Field(1000, ge=1)
    callback_token_secrets: str = Field("", description="Secrets for per-message callback tokens.")
    secrets_file: Path | None = Field(
        None,
        description="JSON file {provider: {secrets, public_keys, basic, options}} merged "
        "with the DLR_<PROVIDER>_* variables (e.g. a mounted Kubernetes secret).",
    )
    # -- per-provider credentials (comma-separated lists) --------------------------------
    generic_secrets: str = ""
    twilio_secrets: str = ""
    vonage_secrets: str = ""
    vonage_signature_method: Literal["md5", "md5hash", "sha1", "sha256", "sha512"] = Field(
        "sha256",
        description="Vonage's signature method; md5hash (Vonage's old dashboard default) "
        "only when named explicitly (here or in the secrets file).",
    )
    plivo_secrets: str = ""
    telnyx_public_keys: str = ""
    sinch_secrets: str = ""
    infobip_secrets: str = ""
    infobip_credentials: str = Field("", description="user:password list (Basic auth option).")
    bird_secrets: str = ""
    bandwidth_credentials: str = Field("", description="user:password list for Basic auth.")
    sns_topic_arns: str = Field(
        "", description="Accepted SNS TopicArns; empty = the SNS route refuses everything."
    )
    standard_secrets: str = ""
    standard_public_keys: str = ""
    generic_allow_ips: str = ""
    twilio_allow_ips: str = ""
    vonage_allow_ips: str = ""
    plivo_allow_ips: str = ""
    telnyx_allow_ips: str = ""
    sinch_allow_ips: str = ""
    infobip_allow_ips: str = ""
    bird_allow_ips: str = ""
    bandwidth_allow_ips: str = ""
    sns_allow_ips: str = ""
    standard_allow_ips: str = ""
    # Subject / SAN patterns of the client certificates allowed to post to a provider's
    # route (mutual TLS, `ingress/transport.py`); empty = no certificate needed there.
    generic_client_cert_subjects: str = ""
    twilio_client_cert_subjects: str = ""
    vonage_client_cert_subjects: str = ""
    plivo_client_cert_subjects: str = ""
    telnyx_client_cert_subjects: str = ""
    sinch_client_cert_subjects: str = ""
    infobip_client_cert_subjects: str = ""
    bird_client_cert_subjects: str = ""
    bandwidth_client_cert_subjects: str = ""
    sns_client_cert_subjects: str = ""
    standard_client_cert_subjects: str = ""

    def client_cert_subjects(self, provider: str) -> str:
        """The raw `<provider>_client_cert_subjects` setting ('' when not defined)."""
        value = getattr(self, f"{provider}_client_cert_subjects", "")
        return value if isinstance(value, str) else ""

    def provider_setting(self, provider: str, suffix: str) -> tuple[str, ...]:
        """The list-valued setting `<provider>_<suffix>` (empty when not defined)."""
        value = getattr(self, f"{provider}_{suffix}", "")
        return split_list(value) if isinstance(value, str) else ()
