"""The shape every provider module fills in; no class hierarchy, just these types.

A provider module (`ingress/providers/<name>.py`) exposes module-level names matching
`Provider`: it verifies a request with the provider's own scheme, extracts one `Record`
per (message, recipient) status report, and can `sign` a request the way the provider
would (tests and `dlr demo` use it). It never maps statuses: that is
`schemas/providers/<name>.py`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True, slots=True)
class InboundRequest:
    """A webhook request as the provider sent it: the externally visible URL, raw body."""

    method: str
    #: Full external URL including scheme, host, optional port, path and query, exactly
    #: as the provider requested it (reconstructed from the public base URL/proxy headers).
    url: str
    #: Lower-cased header names.
    headers: Mapping[str, str]
    body: bytes
    client_ip: str = ""

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-cased ('' when absent)."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    @property
    def query(self) -> list[tuple[str, str]]:
        """Query parameters in order, blanks kept."""
        return parse_qsl(urlsplit(self.url).query, keep_blank_values=True)

    def with_(self, **changes: Any) -> InboundRequest:
        """A copy with some fields replaced (used by `sign`)."""
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Credentials:
    """The active verification material of one provider; several entries allow rotation."""

    #: HMAC-style shared secrets / auth tokens / `whsec_` secrets.
    secrets: tuple[str, ...] = ()
    #: Base64 Ed25519 public keys (Telnyx, Standard Webhooks v1a).
    public_keys: tuple[str, ...] = ()
    #: (user, password) pairs for HTTP Basic auth (Bandwidth).
    basic: tuple[tuple[str, str], ...] = ()
    #: Provider-specific options, e.g. {"signature_method": "sha256"} for Vonage,
    #: {"topic_arns": "arn:...,arn:..."} or pinned certificates for SNS.
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """True when nothing could ever verify a request."""
        return not (self.secrets or self.public_keys or self.basic)


@dataclass(frozen=True, slots=True)
class VerifyContext:
    """Time and I/O a verifier may need, passed in so verifiers stay pure and testable."""

    now: float
    #: Allowed clock difference for signed timestamps, seconds, both directions.
    window: float = 300.0
    #: Fetches a URL over HTTPS and returns the body (SNS certificates); cached by caller.
    fetch: Callable[[str], Awaitable[bytes]] | None = None


@dataclass(frozen=True, slots=True)
class Verified:
    """Outcome of a successful verification."""

    #: Non-secret identifier of the secret/key that matched (see `_common.key_id`).
    key_id: str
    #: What identifies this exact delivery for replay protection: the provider's event id
    #: when it has one, else the signature value.
    replay_key: str
    #: The signed timestamp (unix seconds) when the scheme has one.
    signed_at: float | None = None
    #: URL to GET after acknowledging (SNS SubscriptionConfirmation handshake).
    confirm_url: str | None = None


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message a person sent to one of our numbers, as far as opt-outs care: who wrote,
    to which number, what (only a keyword matters: `schemas.optout`), and the provider's
    own opt-out classification when it makes one (Twilio `OptOutType`)."""

    #: The person's number, as the provider wrote it (normalised by the ingress).
    number: str
    #: Our number (or short code) they wrote to.
    to: str | None
    text: str | None
    hint: str | None = None
    #: The provider's time of the message (ISO 8601 or unix seconds as text), if given.
    timestamp: str | None = None


@dataclass(frozen=True, slots=True)
class Record:
    """One status report for one message (and recipient), or one inbound message
    (`inbound` set), ready to go to Kafka."""

    #: The provider's own message identifier (`SM…`, batch id, UUID …).
    provider_message_id: str
    #: Key suffix after `<provider>:`; equals provider_message_id unless the provider
    #: identifies a batch rather than a message, then `<batch id>:<recipient>`.
    message_key: str
    #: Fields of this report as a flat-ish dict (form params, or the JSON item plus the
    #: context it needs); this is exactly what `schemas/providers/<name>.to_canonical` reads.
    payload: Mapping[str, Any]
    #: Provider event id when the provider has one (Telnyx data.id, webhook-id, SNS MessageId).
    event_id: str | None = None
    #: Raw bytes of this part of a batch; None means the whole request body.
    body: bytes | None = None
    #: Set for an inbound message (not a receipt): the ingress keeps it only when it is an
    #: opt-out keyword (STOP / START / HELP) and keys it by the person's number hash.
    inbound: Inbound | None = None


class Provider(Protocol):
    """What `ingress/providers/<name>.py` modules provide (checked structurally)."""

    NAME: str
    METHODS: frozenset[str]
    #: Accepted media types (lower-case, no parameters); empty = any (e.g. GET with no body).
    CONTENT_TYPES: frozenset[str]

    async def verify(
        self, request: InboundRequest, credentials: Credentials, context: VerifyContext
    ) -> Verified: ...

    def extract(self, request: InboundRequest) -> list[Record]: ...

    def sign(self, request: InboundRequest, key: str, now: int) -> InboundRequest: ...

    def dev_credentials(self) -> tuple[Credentials, str]: ...
