"""Every way an inbound webhook can be refused, and the HTTP status it gets.

    IngressError                      base; `status` and a stable `code` for the JSON body
    ├── MalformedPayload        400   body does not parse for this provider
    ├── InvalidPayload          422   parses, but lacks what the provider always sends
    ├── VerificationError       401   authenticity could not be established
    │   ├── MissingHeader             a required signature/timestamp header is absent
    │   ├── StaleTimestamp            signed timestamp outside the replay window
    │   ├── BadSignature              no active secret/key produced this signature
    │   └── NoCredentials             provider has no secret configured: refuse everything
    ├── ForbiddenSource         403   client IP not in the provider's allow-list
    ├── InsecureTransport       403   plain HTTP where HTTPS is required (DLR_REQUIRE_HTTPS)
    ├── ForbiddenClientCertificate 403  no, an expired or a not-allowed client certificate
    ├── UnknownProvider         404   no such provider slug
    ├── UnknownToken            404   callback token forged, altered or unknown
    ├── MethodNotAllowed        405
    ├── PayloadTooLarge         413   body over DLR_MAX_BODY_BYTES (read incrementally)
    ├── UnsupportedMediaType    415
    ├── RateLimited             429   over the per-provider rate limit
    ├── BrokerUnavailable       503   Kafka did not acknowledge in time; provider retries
    └── UpstreamUnavailable     503   a verification dependency (SNS certificate) is unreachable

Handlers in `ingress/webhook.py` turn these into `{"error": code, "detail": text}` and
metrics label failures by class name. Endpoints never catch them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingress.providers._contract import InboundRequest


class IngressError(Exception):
    """Base of all refusals; carries the HTTP status and a stable error code."""

    status: int = 400
    code: str = "bad_request"
    #: The request as read, when it was refused after its body was read (the refused
    #: capture keeps it: ingress/refused.py).
    request: InboundRequest | None = None

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.code)
        self.detail = detail or self.code


class MalformedPayload(IngressError):
    """The body does not parse as the provider's format."""

    status = 400
    code = "malformed_payload"


class InvalidPayload(IngressError):
    """The body parses but lacks fields the provider always sends."""

    status = 422
    code = "invalid_payload"


class VerificationError(IngressError):
    """Authenticity of the request could not be established."""

    status = 401
    code = "verification_failed"


class MissingHeader(VerificationError):
    """A signature, timestamp or credential header is missing."""

    code = "missing_header"


class StaleTimestamp(VerificationError):
    """The signed timestamp is outside the allowed window (either direction)."""

    code = "stale_timestamp"


class BadSignature(VerificationError):
    """No active secret or key verifies the signature."""

    code = "bad_signature"


class NoCredentials(VerificationError):
    """The provider has no credentials configured, so nothing can be accepted."""

    code = "no_credentials"


class ForbiddenSource(IngressError):
    """The client address is not in the provider's allow-list."""

    status = 403
    code = "forbidden_source"


class InsecureTransport(IngressError):
    """The request came over plain HTTP (and no trusted proxy said HTTPS) where HTTPS is
    required."""

    status = 403
    code = "insecure_transport"


class ForbiddenClientCertificate(IngressError):
    """The route needs a client certificate matching its subjects and this request has
    none, an expired one, or another one."""

    status = 403
    code = "forbidden_client_certificate"


class UnknownProvider(IngressError):
    """No provider is registered under that slug."""

    status = 404
    code = "unknown_provider"


class UnknownToken(IngressError):
    """The per-message callback token is forged, altered or unknown."""

    status = 404
    code = "unknown_token"


class MethodNotAllowed(IngressError):
    """The provider never sends this HTTP method."""

    status = 405
    code = "method_not_allowed"


class PayloadTooLarge(IngressError):
    """The body exceeds the configured limit."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(IngressError):
    """The provider never sends this content type."""

    status = 415
    code = "unsupported_media_type"


class RateLimited(IngressError):
    """The provider exceeded its request rate limit."""

    status = 429
    code = "rate_limited"


class BrokerUnavailable(IngressError):
    """Kafka did not acknowledge the event in time; answer 503 so the provider retries."""

    status = 503
    code = "broker_unavailable"


class UpstreamUnavailable(IngressError):
    """Verification needs something we could not fetch (SNS certificate); retry later."""

    status = 503
    code = "upstream_unavailable"
