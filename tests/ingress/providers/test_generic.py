"""Generic JSON verifier and extractor: HMAC-SHA256 over "{timestamp}.{body}", rotation through
several `v1=` values, and one broken thing per refused case."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from deploy.tools.samples import load
from ingress.errors import (
    BadSignature,
    IngressError,
    InvalidPayload,
    MalformedPayload,
    MissingHeader,
    NoCredentials,
    StaleTimestamp,
)
from ingress.providers import generic
from ingress.providers._common import key_id
from ingress.providers._contract import Credentials, InboundRequest, Verified, VerifyContext

NOW = 1_700_000_000
SECRET = "generic-secret"
CREDS = Credentials(secrets=("old-secret", SECRET))
URL = "https://dlr.example.com/webhooks/generic"
BODY = next(f for f in load("generic") if f.name == "delivered").body


def _request(body: bytes = BODY, **headers: str) -> InboundRequest:
    return InboundRequest("POST", URL, {"content-type": "application/json", **headers}, body)


def _verify(request: InboundRequest, creds: Credentials = CREDS, now: float = NOW) -> Verified:
    return asyncio.run(generic.verify(request, creds, VerifyContext(now=now, window=300)))


def _signed(key: str = SECRET, at: int = NOW, body: bytes = BODY) -> InboundRequest:
    return generic.sign(_request(body), key, at)


def test_signed_request_verifies_with_the_key_that_signed_it() -> None:
    verified = _verify(_signed())
    assert verified.key_id == key_id(SECRET)
    assert verified.signed_at == NOW
    # the replay key is the signature: the same request re-signed later is another delivery
    assert verified.replay_key != _verify(_signed(at=NOW + 1), now=NOW + 1).replay_key


def test_any_of_several_v1_signatures_may_match_during_a_rotation() -> None:
    signed = _signed()
    header = signed.headers["x-webhook-signature"]
    rotated = signed.with_(
        headers={**signed.headers, "x-webhook-signature": f"v1={'0' * 64}, {header}"}
    )
    assert _verify(rotated).key_id == key_id(SECRET)


@pytest.mark.parametrize(
    ("request_", "creds", "error"),
    [
        pytest.param(_signed("wrong"), CREDS, BadSignature, id="wrong-key"),
        pytest.param(_signed().with_(body=BODY + b" "), CREDS, BadSignature, id="tampered"),
        pytest.param(_signed(at=NOW - 301), CREDS, StaleTimestamp, id="stale"),
        pytest.param(_signed(at=NOW + 301), CREDS, StaleTimestamp, id="future"),
        pytest.param(_request(), CREDS, MissingHeader, id="unsigned"),
        pytest.param(_signed(), Credentials(), NoCredentials, id="no-credentials"),
    ],
)
def test_refused(request_: InboundRequest, creds: Credentials, error: type[IngressError]) -> None:
    with pytest.raises(error):
        _verify(request_, creds)


def test_extract_is_one_record_keyed_by_message_id() -> None:
    payload = orjson.loads(BODY)
    (record,) = generic.extract(_request())
    assert record.message_key == record.provider_message_id == payload["message_id"]
    assert record.payload == payload
    assert record.event_id == payload.get("event_id")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{nope", MalformedPayload),
        (b"[]", MalformedPayload),
        (b'{"status": "sent"}', InvalidPayload),
        (b'{"message_id": " ", "status": "sent"}', InvalidPayload),
        (b'{"message_id": "m1"}', InvalidPayload),
        (orjson.dumps({"message_id": "m" * 201, "status": "sent"}), InvalidPayload),
    ],
)
def test_extract_refused(body: bytes, error: type[IngressError]) -> None:
    with pytest.raises(error):
        generic.extract(_request(body))
