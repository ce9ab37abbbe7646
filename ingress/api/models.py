"""What a registration may say, and the `dlr.sends.v1` records it becomes.

A body is one registration (a JSON object) or a batch (a JSON array of them). Every field
is checked before anything is produced: one bad message refuses the whole request with a
`422` that lists each problem (`index` in the batch, `field`, `message`), so a retry of
the corrected batch is the only thing a sender has to do. Unknown fields are refused too
(a misspelt `consent` must not pass silently).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from ingress.api.errors import BatchTooLarge, InvalidRegistration, MalformedJson
from schemas.geo import country_of_number, region_of
from schemas.phone import e164, protect, protect_sender
from schemas.providers import MAPPERS
from schemas.sends import REGISTRATION, digest, part_link, split_message_id

__all__ = ["Consent", "Registration", "parse_batch", "records", "wire_time"]

#: How far ahead of our clock a sender's `submitted_at` may be (clock skew).
CLOCK_SKEW = timedelta(minutes=5)


def wire_time(value: datetime) -> str:
    """RFC 3339 UTC with milliseconds and 'Z' (the contract's time form)."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Consent(BaseModel):
    """Where and when the recipient agreed to receive the message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=1, max_length=128, description="e.g. checkout-checkbox")
    obtained_at: AwareDatetime
    reference: str | None = Field(None, max_length=256, description="e.g. terms version")


class Registration(BaseModel):
    """One sent message as the sender registers it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    message_id: str = Field(
        min_length=3,
        max_length=200,
        description="'<provider>:<provider message id>' as the pipeline keys it",
    )
    recipient: str = Field(description="E.164 phone number (PII: hashed in ClickHouse)")
    sender: str | None = Field(None, max_length=64)
    campaign: str | None = Field(None, min_length=1, max_length=128)
    tenant: str | None = Field(None, min_length=1, max_length=128)
    client_ref: str | None = Field(None, min_length=1, max_length=128)
    submitted_at: AwareDatetime
    consent: Consent
    parts: list[str] | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="provider ids of every part, for providers that report parts apart",
    )

    @field_validator("message_id")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        provider, rest = split_message_id(value)
        if provider not in MAPPERS:
            raise ValueError(f"unknown provider {provider!r}")
        if any(c.isspace() for c in rest):
            raise ValueError("the provider message id has white space")
        return value

    @field_validator("recipient")
    @classmethod
    def _e164(cls, value: str) -> str:
        number = e164(value)
        if number is None:
            raise ValueError("not a phone number with its country code (E.164)")
        return number

    @field_validator("submitted_at")
    @classmethod
    def _not_future(cls, value: datetime) -> datetime:
        if value > datetime.now(UTC) + CLOCK_SKEW:
            raise ValueError("lies in the future")
        return value

    @field_validator("parts")
    @classmethod
    def _parts(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if any(not part or len(part) > 200 or part.strip() != part for part in value):
            raise ValueError("every part is a provider message id (1-200 characters)")
        if len(set(value)) != len(value):
            raise ValueError("parts repeat an id")
        return value

    def check(self) -> None:
        """Cross-field rules (ValueError)."""
        if self.consent.obtained_at > self.submitted_at + CLOCK_SKEW:
            raise ValueError("consent.obtained_at is after submitted_at")


def _where(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc) or "(body)"


def parse_batch(body: bytes, max_batch: int) -> tuple[list[Registration], bool]:
    """(registrations, was a batch) of a request body; MalformedJson / InvalidRegistration.

    `max_batch` is checked by the caller before this (BatchTooLarge is a 413)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedJson(f"body is not JSON: {exc}") from exc
    batch = isinstance(data, list)
    items = data if batch else [data]
    if not items:
        raise InvalidRegistration("an empty batch registers nothing", [])
    if len(items) > max_batch:
        raise BatchTooLarge(f"{len(items)} messages; at most {max_batch} per request")
    errors: list[dict[str, Any]] = []
    out: list[Registration] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append({"index": index, "field": "(message)", "message": "not an object"})
            continue
        try:
            registration = Registration.model_validate(item)
            registration.check()
        except ValidationError as exc:
            for error in exc.errors(include_url=False, include_input=False):
                errors.append(
                    {"index": index, "field": _where(error["loc"]), "message": error["msg"]}
                )
            continue
        except ValueError as exc:
            errors.append({"index": index, "field": "(message)", "message": str(exc)})
            continue
        out.append(registration)
    if errors:
        raise InvalidRegistration(f"{len(errors)} problem(s); nothing was registered", errors)
    return out, batch


def records(
    registration: Registration,
    tenant: str | None,
    key_id: str,
    now: datetime,
    *,
    pii_mode: str,
    salt: str,
) -> list[tuple[bytes, bytes]]:
    """The `dlr.sends.v1` records of one registration: itself, then its part links.

    The recipient (and a phone-number sender) leave as `pii_mode` says (`schemas/phone.py`:
    the salted hash by default); country and region are read from the number first."""
    provider, provider_id = split_message_id(registration.message_id)
    country = country_of_number(registration.recipient)
    region = region_of(country)
    recipient, sender = registration.recipient, registration.sender
    if pii_mode != "clear":
        recipient = protect(recipient, pii_mode=pii_mode, salt=salt)[0] or recipient
        sender = protect_sender(sender, pii_mode=pii_mode, salt=salt)[0]
    consent = registration.consent
    at = wire_time(now)
    record: dict[str, Any] = {
        "type": REGISTRATION,
        "v": 1,
        "message_id": registration.message_id,
        "provider": provider,
        "provider_message_id": provider_id,
        "recipient": recipient,
        "sender": sender,
        "pii_mode": pii_mode,
        "campaign": registration.campaign,
        "tenant": tenant,
        "client_ref": registration.client_ref,
        "submitted_at": wire_time(registration.submitted_at),
        "consent": {
            "source": consent.source,
            "obtained_at": wire_time(consent.obtained_at),
            "reference": consent.reference,
        },
        "parts": registration.parts,
        "country": country,
        "region": region,
        "registered_at": at,
        "key_id": key_id,
    }
    record["digest"] = digest(record)
    out = [(registration.message_id.encode(), orjson.dumps(record))]
    if registration.parts:
        out += part_link(registration.message_id, registration.parts, at)
    return out
