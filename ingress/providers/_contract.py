"""The shape every provider module fills in; no class hierarchy, just these types.

A provider module (`ingress/providers/<name>.py`) exposes module-level names matching
`Provider`: it verifies a request with the provider's own scheme, extracts one `Record`
per (message, recipient) status report, and can `sign` a request the way the provider
would (tests and `dlr demo` use it). It never maps statuses: that is
`schemas/providers/<name>.py`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar, dataclass_transform
from urllib.parse import parse_qsl, urlsplit

import orjson

from ingress.providers._common import parse_form

_T = TypeVar("_T")


@dataclass_transform(frozen_default=True)
def value_type(cls: type[_T]) -> type[_T]:
    """A slots dataclass that mypy treats as frozen, without frozen's price at run time.

    The types below are built several times per webhook. A frozen dataclass sets every
    field through `object.__setattr__` (about a microsecond per object here, as much as
    the whole signature check); mypy --strict (`make lint`) still refuses any assignment
    to their fields, which is what frozen was for.
    """
    return dataclass(slots=True)(cls)


@value_type
class InboundRequest:
    """A webhook request as the provider sent it: the externally visible URL, raw body.

    The parsed forms of the body and the query are computed once and kept: a provider's
    `verify` and `extract` both need them, and parsing is a good part of a request's cost.
    They are shared, so callers never modify what `json()`, `form()` or `query` return.
    """

    method: str
    #: Full external URL including scheme, host, optional port, path and query, exactly
    #: as the provider requested it (reconstructed from the public base URL/proxy headers).
    url: str
    #: Lower-cased header names.
    headers: Mapping[str, str]
    body: bytes
    client_ip: str = ""
    _parsed: dict[str, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-cased ('' when absent)."""
        parsed = self._parsed
        if "content_type" not in parsed:
            header = self.headers.get("content-type", "")
            parsed["content_type"] = header.split(";", 1)[0].strip().lower()
        value: str = parsed["content_type"]
        return value

    @property
    def query(self) -> list[tuple[str, str]]:
        """Query parameters in order, blanks kept."""
        parsed = self._parsed
        if "query" not in parsed:
            parsed["query"] = query_pairs(self.url)
        value: list[tuple[str, str]] = parsed["query"]
        return value

    def json(self) -> Any:
        """The body parsed as JSON, once; raises `orjson.JSONDecodeError` like `orjson.loads`."""
        parsed = self._parsed
        if "json" not in parsed:
            parsed["json"] = orjson.loads(self.body)
        return parsed["json"]

    def form(self) -> list[tuple[str, str]]:
        """The body as `application/x-www-form-urlencoded` pairs (`parse_form`), once."""
        parsed = self._parsed
        if "form" not in parsed:
            parsed["form"] = parse_form(self.body)
        value: list[tuple[str, str]] = parsed["form"]
        return value

    def with_(self, **changes: Any) -> InboundRequest:
        """A copy with some fields replaced (used by `sign`); nothing parsed is carried over."""
        return replace(self, **changes)


@functools.lru_cache(maxsize=1024)
def _query_pairs(url: str) -> tuple[tuple[str, str], ...]:
    return tuple(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def query_pairs(url: str) -> list[tuple[str, str]]:
    """A URL's query parameters in order, blanks kept (memoized: webhooks reuse few URLs)."""
    return list(_query_pairs(url))


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


@value_type
class VerifyContext:
    """Time and I/O a verifier may need, passed in so verifiers stay pure and testable."""

    now: float
    #: Allowed clock difference for signed timestamps, seconds, both directions.
    window: float = 300.0
    #: Fetches a URL over HTTPS and returns the body (SNS certificates); cached by caller.
    fetch: Callable[[str], Awaitable[bytes]] | None = None


@value_type
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


@value_type
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


@value_type
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
