"""Bird / MessageBird verifier and extractor: published JWT vectors, then one broken thing
per case for both schemes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
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
from ingress.providers import bird
from ingress.providers._common import key_id
from ingress.providers._contract import Credentials, InboundRequest, Verified, VerifyContext

NOW = 1_700_000_000
URL = "https://dlr.example.com/webhooks/bird"
SECRET = "bird-signing-key-0123456789abcdef0123456789"
OTHER = "bird-signing-key-fedcba9876543210fedcba9876"
CREDS = Credentials(secrets=(SECRET,))

#: messagebird/python-rest-api tests/test_request_validator/webhook_signature_test_data.json
#: (commit 2905d95), all 44 cases, copied unchanged.
VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "messagebird_webhook_signature_test_data.json").read_text()
)
VECTOR_SECRET = "36efdd1aace2e26cd490f0d951138253bef2f7c6d34d18981da781555cc4cebb"
#: The SDK's failure reasons, as our error classes (expiry is a timestamp problem).
REASONS: dict[str, type[IngressError]] = {
    "invalid jwt: claim nbf is in the future": StaleTimestamp,
    "invalid jwt: claim exp is in the past": StaleTimestamp,
}


def _fixture(name: str) -> InboundRequest:
    return next(f for f in load("bird") if f.name == name).request()


POST = _fixture("undelivered")  # Bird platform JSON
GET = _fixture("invalid_number")  # legacy query report


def _verify(request: InboundRequest, creds: Credentials = CREDS, now: float = NOW) -> Verified:
    return asyncio.run(bird.verify(request, creds, VerifyContext(now=now)))


# -- legacy JWT: published vectors ---------------------------------------------------


@pytest.mark.parametrize("case", [pytest.param(c, id=c["name"]) for c in VECTORS])
def test_messagebird_sdk_vectors(case: dict[str, Any]) -> None:
    now = datetime.fromisoformat(case["timestamp"]).timestamp()
    request = InboundRequest(
        method=case["method"],
        url=case["url"],
        headers={"messagebird-signature-jwt": case["token"]},
        body=case.get("payload", "").encode(),
    )
    creds = Credentials(secrets=(case.get("secret") or VECTOR_SECRET,))
    if case["valid"]:
        verified = _verify(request, creds, now)
        assert verified.key_id == key_id(VECTOR_SECRET)
        assert verified.signed_at == 1_625_479_200.0
    else:
        with pytest.raises(REASONS.get(case["reason"], BadSignature)):
            _verify(request, creds, now)


def test_published_known_answer_vector() -> None:
    token = (
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIw"
        "MCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiI5M2U1NTAwNi1hMGU4LTQ1MjYtYTE5MC1mYTVmZjAwZWExMTYi"
        "LCJ1cmxfaGFzaCI6IjQxZjA1ZjBkZGQwYTIyYWIyMDlhYzQ2ZjQ3YzQ1NzJkOWNlZmEyNTdlZDc0YjI0MDA0"
        "YmFlNzUzZWNlNmMyNjAiLCJwYXlsb2FkX2hhc2giOiJkZmZkNjAyMWJiMmJkNWIwYWY2NzYyOTA4MDllYzNh"
        "NTMxOTFkZDgxYzdmNzBhNGIyODY4OGEzNjIxODI5ODZmIn0._H--TOuYFLpeEH39-rg5E3IHVkjHozBcaKVWPRC5m9I"
    )
    request = InboundRequest(
        method="POST",
        url="https://example.com/path?bar=1&foo=2",
        headers={"messagebird-signature-jwt": token},
        body=b"Hello, World!",
    )
    now = datetime.fromisoformat("2021-07-05T12:00:00+02:00").timestamp()
    verified = _verify(request, Credentials(secrets=(VECTOR_SECRET,)), now)
    assert verified == Verified(
        key_id=key_id(VECTOR_SECRET),
        replay_key="93e55006-a0e8-4526-a190-fa5ff00ea116",
        signed_at=1_625_479_200.0,
    )
    with pytest.raises(BadSignature):
        _verify(request.with_(body=b"Hello, World?"), Credentials(secrets=(VECTOR_SECRET,)), now)


# -- legacy JWT: signed with our own sign() ------------------------------------------


def _jwt(request: InboundRequest = GET, key: str = SECRET, now: int = NOW) -> InboundRequest:
    return bird.sign(request, key, now)


def _forged(claims: dict[str, Any], key: str = SECRET, algorithm: str = "HS256") -> InboundRequest:
    base: dict[str, Any] = {
        "iss": "MessageBird",
        "nbf": NOW,
        "exp": NOW + 60,
        "url_hash": hashlib.sha256(GET.url.encode()).hexdigest(),
    }
    signing_key = None if algorithm == "none" else key
    # pyjwt wants key=None for alg "none" but does not type it
    token = jwt.encode({**base, **claims}, signing_key, algorithm=algorithm)  # type: ignore[arg-type]
    return GET.with_(headers={**GET.headers, "messagebird-signature-jwt": token})


def test_jwt_sign_roundtrip() -> None:
    request = _jwt()
    token = request.headers["messagebird-signature-jwt"]
    claims = jwt.decode(
        token, SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False}
    )
    assert claims["iss"] == "MessageBird"
    assert claims["url_hash"] == hashlib.sha256(GET.url.encode()).hexdigest()
    assert "payload_hash" not in claims  # GET, no body
    verified = _verify(request)
    assert verified == Verified(key_id=key_id(SECRET), replay_key=claims["jti"], signed_at=NOW)


def test_jwt_rotation_second_secret() -> None:
    verified = _verify(_jwt(key=OTHER), Credentials(secrets=(SECRET, OTHER)))
    assert verified.key_id == key_id(OTHER)


def test_jwt_leeway_is_one_second() -> None:
    assert _verify(_jwt(now=NOW), now=NOW + 61).key_id == key_id(SECRET)
    with pytest.raises(StaleTimestamp):
        _verify(_jwt(now=NOW), now=NOW + 61.5)
    assert _verify(_jwt(now=NOW), now=NOW - 1).key_id == key_id(SECRET)
    with pytest.raises(StaleTimestamp):
        _verify(_jwt(now=NOW), now=NOW - 1.5)


def test_jwt_without_jti_uses_the_signature_as_replay_key() -> None:
    request = _forged({})
    token = request.headers["messagebird-signature-jwt"]
    assert _verify(request).replay_key == token.rsplit(".", 1)[-1]


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        pytest.param(_jwt().with_(url=GET.url + "&x=1"), BadSignature, id="tampered-query"),
        pytest.param(
            _jwt().with_(url=GET.url.replace("status=delivery_failed", "status=delivered")),
            BadSignature,
            id="tampered-status",
        ),
        pytest.param(_jwt().with_(body=b"x"), BadSignature, id="body-added"),
        pytest.param(
            _jwt(POST.with_(method="GET")).with_(body=b""), BadSignature, id="body-removed"
        ),
        pytest.param(_jwt(key=OTHER), BadSignature, id="wrong-secret"),
        pytest.param(_jwt(now=NOW - 120), StaleTimestamp, id="expired"),
        pytest.param(_jwt(now=NOW + 120), StaleTimestamp, id="not-yet-valid"),
        pytest.param(
            _forged({"nbf": NOW - 400, "exp": NOW + 400}), StaleTimestamp, id="nbf-outside-window"
        ),
        pytest.param(_forged({"iss": "Someone"}), BadSignature, id="wrong-issuer"),
        pytest.param(_forged({"url_hash": None}), BadSignature, id="no-url-hash"),
        pytest.param(_forged({"nbf": "soon"}), BadSignature, id="nbf-not-a-number"),
        pytest.param(_forged({}, algorithm="none"), BadSignature, id="alg-none"),
        pytest.param(
            GET.with_(headers={"messagebird-signature-jwt": "not.a.jwt"}),
            BadSignature,
            id="garbage",
        ),
    ],
)
def test_jwt_refused(request_: InboundRequest, error: type[IngressError]) -> None:
    with pytest.raises(error):
        _verify(request_)


# -- Bird platform HMAC --------------------------------------------------------------


def _hmac(request: InboundRequest = POST, key: str = SECRET, now: int = NOW) -> InboundRequest:
    return bird.sign(request, key, now)


def test_hmac_matches_the_documented_construction() -> None:
    """Recomputed with the standard library from Bird's verifying-a-webhook page."""
    body = b'{"service":"channels","event":"sms.outbound"}'
    request = InboundRequest("POST", "https://domain.com/webhook/bird", {}, body)
    signed = bird.sign(request, "secureSigningKey", 1_719_823_259)
    message = b"1719823259\nhttps://domain.com/webhook/bird\n" + hashlib.sha256(body).digest()
    expected = hmac.new(b"secureSigningKey", message, hashlib.sha256).digest()
    assert signed.headers["messagebird-request-timestamp"] == "1719823259"
    assert signed.headers["messagebird-signature"] == base64.b64encode(expected).decode()


def test_hmac_valid_request_is_accepted() -> None:
    request = _hmac()
    verified = _verify(request)
    assert verified == Verified(
        key_id=key_id(SECRET),
        replay_key=request.headers["messagebird-signature"],
        signed_at=NOW,
    )


def test_hmac_rotation_second_secret() -> None:
    assert _verify(_hmac(key=OTHER), Credentials(secrets=(SECRET, OTHER))).key_id == key_id(OTHER)


def test_hmac_window_edges_are_inclusive() -> None:
    assert _verify(_hmac(now=NOW - 300)).signed_at == NOW - 300
    assert _verify(_hmac(now=NOW + 300)).signed_at == NOW + 300


def _drop(name: str) -> InboundRequest:
    signed = _hmac()
    return signed.with_(headers={k: v for k, v in signed.headers.items() if k != name})


def _set(name: str, value: str) -> InboundRequest:
    signed = _hmac()
    return signed.with_(headers={**signed.headers, name: value})


@pytest.mark.parametrize(
    ("request_", "creds", "error"),
    [
        pytest.param(_hmac().with_(body=POST.body + b" "), CREDS, BadSignature, id="tampered-body"),
        pytest.param(_hmac().with_(url=URL + "?x=1"), CREDS, BadSignature, id="tampered-url"),
        pytest.param(_hmac(key=OTHER), CREDS, BadSignature, id="wrong-secret"),
        pytest.param(
            _set("messagebird-request-timestamp", str(NOW + 1)),
            CREDS,
            BadSignature,
            id="ts-swapped",
        ),
        pytest.param(_hmac(now=NOW - 301), CREDS, StaleTimestamp, id="stale-timestamp"),
        pytest.param(_hmac(now=NOW + 301), CREDS, StaleTimestamp, id="future-timestamp"),
        pytest.param(
            _set("messagebird-request-timestamp", "now"), CREDS, StaleTimestamp, id="ts-text"
        ),
        pytest.param(_drop("messagebird-signature"), CREDS, MissingHeader, id="no-signature"),
        pytest.param(
            _drop("messagebird-request-timestamp"), CREDS, MissingHeader, id="no-timestamp"
        ),
        pytest.param(POST, CREDS, MissingHeader, id="unsigned"),
        pytest.param(
            _set("messagebird-signature", "%%%"), CREDS, BadSignature, id="sig-not-base64"
        ),
        pytest.param(_hmac(), Credentials(), NoCredentials, id="no-credentials"),
        pytest.param(
            _hmac(), Credentials(public_keys=("a2V5",)), NoCredentials, id="key-not-secret"
        ),
    ],
)
def test_hmac_refused(
    request_: InboundRequest, creds: Credentials, error: type[IngressError]
) -> None:
    with pytest.raises(error):
        _verify(request_, creds)


def test_dev_credentials_sign_and_verify_both_schemes() -> None:
    creds, key = bird.dev_credentials()
    assert creds.secrets == (key,)
    assert _verify(bird.sign(GET, key, NOW), creds).key_id == key_id(key)
    assert _verify(bird.sign(POST, key, NOW), creds).key_id == key_id(key)


# -- extract -------------------------------------------------------------------------


def test_extract_legacy_report_keyed_by_id_and_recipient() -> None:
    (record,) = bird.extract(GET)
    assert record.provider_message_id == "e8077d803532c0b5937c639b60216939"
    assert record.message_key == "e8077d803532c0b5937c639b60216939:31612345679"
    assert record.event_id is None and record.body is None
    assert record.payload["status"] == "delivery_failed"
    assert record.payload["reason_code"] == "unknown_subscriber"
    assert record.payload["error_code"] == "1"
    assert record.payload["price_amount"] == "0.07"


def test_extract_platform_message_keyed_by_id() -> None:
    (record,) = bird.extract(POST)
    assert record.message_key == "5f3b2a8e-8a7b-4c61-9a0e-2d5c1e7f9b10"
    assert record.payload["to"] == "+31612345678"
    assert record.payload["reason_code"] == "received_network_error"
    assert record.payload["error_code"] == "15001"
    assert record.payload["source_code"] == "34"


def _platform(message: dict[str, Any], event: str = "sms.outbound") -> InboundRequest:
    body = json.dumps({"service": "channels", "event": event, "payload": message}).encode()
    return POST.with_(body=body)


def test_extract_splits_several_receivers() -> None:
    contacts = [{"identifierValue": "+31600000001"}, {"identifierValue": "+31600000002"}]
    records = bird.extract(
        _platform({"id": "m-1", "status": "delivered", "receiver": {"contacts": contacts}})
    )
    assert [r.message_key for r in records] == ["m-1:+31600000001", "m-1:+31600000002"]
    assert {r.provider_message_id for r in records} == {"m-1"}


def test_extract_inbound_messages_yield_nothing() -> None:
    assert bird.extract(_platform({"id": "m-2", "status": "delivered"}, "sms.inbound")) == []
    incoming = {"id": "m-3", "status": "delivered", "direction": "incoming"}
    assert bird.extract(_platform(incoming)) == []


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        pytest.param(POST.with_(body=b"{not json"), MalformedPayload, id="malformed"),
        pytest.param(POST.with_(body=b"[1, 2]"), MalformedPayload, id="not-an-object"),
        pytest.param(POST.with_(body=b'{"payload": "x"}'), InvalidPayload, id="payload-not-object"),
        pytest.param(_platform({"status": "sent"}), InvalidPayload, id="no-id"),
        pytest.param(_platform({"id": "m-4"}), InvalidPayload, id="no-status"),
        pytest.param(_platform({"id": "x" * 201, "status": "sent"}), InvalidPayload, id="long-id"),
        pytest.param(
            _platform({"id": "m-5", "status": "sent", "receiver": {"contacts": [{}, {}]}}),
            InvalidPayload,
            id="group-without-numbers",
        ),
        pytest.param(
            GET.with_(url=URL + "?id=abc&status=delivered"), InvalidPayload, id="no-recipient"
        ),
        pytest.param(
            GET.with_(url=URL + "?recipient=316&status=delivered"),
            InvalidPayload,
            id="legacy-no-id",
        ),
        pytest.param(
            GET.with_(url=URL + "?id=abc&recipient=316"), InvalidPayload, id="legacy-no-status"
        ),
    ],
)
def test_extract_refused(request_: InboundRequest, error: type[IngressError]) -> None:
    with pytest.raises(error):
        bird.extract(request_)
