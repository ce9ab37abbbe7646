"""Standard Webhooks verifier and extractor: the published vector, then one broken thing per
case (v1 HMAC and v1a Ed25519, webhook-* and svix-* headers)."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from nacl.signing import SigningKey

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
from ingress.providers import standard
from ingress.providers._common import key_id
from ingress.providers._contract import Credentials, InboundRequest, Verified, VerifyContext

NOW = 1_700_000_000

#: The Standard Webhooks spec's vector, identical in every standard-webhooks library's tests.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
VECTOR_BAD_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()
CREDS = Credentials(secrets=(SECRET,))

_SIGNING = SigningKey(b"s" * 32)
PRIVATE = "whsk_" + base64.b64encode(bytes(_SIGNING)).decode()
PUBLIC = "whpk_" + base64.b64encode(bytes(_SIGNING.verify_key)).decode()
_OTHER = SigningKey(b"t" * 32)
OTHER_PRIVATE = "whsk_" + base64.b64encode(bytes(_OTHER)).decode()

BODY = next(f for f in load("standard") if f.name == "delivered").body
URL = "https://dlr.example.com/webhooks/standard"


def _request(body: bytes = BODY, **headers: str) -> InboundRequest:
    return InboundRequest("POST", URL, {"content-type": "application/json", **headers}, body)


def _verify(request: InboundRequest, creds: Credentials = CREDS, now: float = NOW) -> Verified:
    return asyncio.run(standard.verify(request, creds, VerifyContext(now=now)))


def _signed(key: str = SECRET, now: int = NOW, body: bytes = BODY) -> InboundRequest:
    return standard.sign(_request(body, **{"webhook-id": "msg_2abc"}), key, now)


def _set(name: str, value: str, request: InboundRequest | None = None) -> InboundRequest:
    signed = request or _signed()
    return signed.with_(headers={**signed.headers, name: value})


def _drop(name: str) -> InboundRequest:
    signed = _signed()
    return signed.with_(headers={k: v for k, v in signed.headers.items() if k != name})


# -- known answer ----------------------------------------------------------------------


def test_known_answer_vector_signs_byte_for_byte() -> None:
    signature = standard.signature(VECTOR_SECRET, VECTOR_ID, str(VECTOR_TS), VECTOR_BODY)
    assert signature == VECTOR_SIGNATURE


def _vector(signature: str) -> InboundRequest:
    return _request(
        VECTOR_BODY,
        **{
            "webhook-id": VECTOR_ID,
            "webhook-timestamp": str(VECTOR_TS),
            "webhook-signature": signature,
        },
    )


def test_known_answer_vector_verifies() -> None:
    verified = _verify(_vector(VECTOR_SIGNATURE), Credentials(secrets=(VECTOR_SECRET,)), VECTOR_TS)
    assert verified == Verified(
        key_id=key_id(VECTOR_SECRET), replay_key=VECTOR_ID, signed_at=float(VECTOR_TS)
    )


def test_known_answer_negative_vector_fails() -> None:
    with pytest.raises(BadSignature):
        _verify(_vector(VECTOR_BAD_SIGNATURE), Credentials(secrets=(VECTOR_SECRET,)), VECTOR_TS)


def test_bare_base64_secret_is_accepted() -> None:
    bare = VECTOR_SECRET.removeprefix("whsec_")
    verified = _verify(_vector(VECTOR_SIGNATURE), Credentials(secrets=(bare,)), VECTOR_TS)
    assert verified.key_id == key_id(bare)


# -- verify ----------------------------------------------------------------------------


def test_valid_v1_request_is_accepted() -> None:
    verified = _verify(_signed())
    assert verified == Verified(key_id=key_id(SECRET), replay_key="msg_2abc", signed_at=NOW)


def test_valid_v1a_ed25519_request_is_accepted() -> None:
    request = _signed(PRIVATE)
    assert request.headers["webhook-signature"].startswith("v1a,")
    verified = _verify(request, Credentials(public_keys=(PUBLIC,)))
    assert verified.key_id == key_id(PUBLIC)


def test_bare_base64_public_key_is_accepted() -> None:
    bare = PUBLIC.removeprefix("whpk_")
    assert _verify(_signed(PRIVATE), Credentials(public_keys=(bare,))).key_id == key_id(bare)


def test_multi_signature_header_any_valid_one_passes() -> None:
    good = _signed().headers["webhook-signature"]
    header = f"v1,{base64.b64encode(b'x' * 32).decode()} v2,whatever {good} v1a,AAAA"
    assert _verify(_set("webhook-signature", header)).key_id == key_id(SECRET)


def test_rotation_second_secret_is_accepted() -> None:
    creds = Credentials(secrets=("whsec_%%%", OTHER_SECRET, SECRET))
    assert _verify(_signed(), creds).key_id == key_id(SECRET)


def test_svix_headers_are_a_fallback() -> None:
    signed = _signed()
    headers = {k.replace("webhook-", "svix-"): v for k, v in signed.headers.items()}
    verified = _verify(signed.with_(headers=headers))
    assert verified.replay_key == "msg_2abc"
    (record,) = standard.extract(signed.with_(headers=headers))
    assert record.event_id == "msg_2abc"


def test_window_edges_are_inclusive() -> None:
    assert _verify(_signed(now=NOW - 300)).signed_at == NOW - 300
    assert _verify(_signed(now=NOW + 300)).signed_at == NOW + 300


@pytest.mark.parametrize(
    ("request_", "creds", "error"),
    [
        pytest.param(_signed().with_(body=BODY + b" "), CREDS, BadSignature, id="tampered-body"),
        pytest.param(_set("webhook-id", "msg_other"), CREDS, BadSignature, id="tampered-id"),
        pytest.param(_set("webhook-timestamp", str(NOW + 1)), CREDS, BadSignature, id="ts-swapped"),
        pytest.param(_signed(OTHER_SECRET), CREDS, BadSignature, id="wrong-secret"),
        pytest.param(
            _signed(OTHER_PRIVATE), Credentials(public_keys=(PUBLIC,)), BadSignature, id="wrong-key"
        ),
        pytest.param(
            _set(
                "webhook-signature", _signed().headers["webhook-signature"].replace("v1,", "v1a,")
            ),
            Credentials(secrets=(SECRET,), public_keys=(PUBLIC,)),
            BadSignature,
            id="hmac-labelled-v1a",
        ),
        pytest.param(
            _set("webhook-signature", _signed().headers["webhook-signature"].replace("v1,", "v2,")),
            CREDS,
            BadSignature,
            id="unknown-version",
        ),
        pytest.param(_set("webhook-signature", "v1,%%%"), CREDS, BadSignature, id="not-base64"),
        pytest.param(_set("webhook-signature", "garbage"), CREDS, BadSignature, id="no-version"),
        pytest.param(_signed(now=NOW - 301), CREDS, StaleTimestamp, id="stale-timestamp"),
        pytest.param(_signed(now=NOW + 301), CREDS, StaleTimestamp, id="future-timestamp"),
        pytest.param(_set("webhook-timestamp", "1.7e9"), CREDS, StaleTimestamp, id="ts-float"),
        pytest.param(
            _set("webhook-timestamp", "-1614265"), CREDS, StaleTimestamp, id="ts-negative"
        ),
        pytest.param(_set("webhook-timestamp", "soon"), CREDS, StaleTimestamp, id="ts-text"),
        pytest.param(_drop("webhook-id"), CREDS, MissingHeader, id="no-id"),
        pytest.param(_drop("webhook-timestamp"), CREDS, MissingHeader, id="no-timestamp"),
        pytest.param(_drop("webhook-signature"), CREDS, MissingHeader, id="no-signature"),
        pytest.param(
            standard.sign(_request(BODY, **{"webhook-id": "msg.1"}), SECRET, NOW),
            CREDS,
            BadSignature,
            id="dot-in-id",
        ),
        pytest.param(_signed(), Credentials(), NoCredentials, id="no-credentials"),
        pytest.param(_signed(), Credentials(basic=(("u", "p"),)), NoCredentials, id="basic-only"),
    ],
)
def test_refused(request_: InboundRequest, creds: Credentials, error: type[IngressError]) -> None:
    with pytest.raises(error):
        _verify(request_, creds)


def test_sign_derives_an_id_without_dots_when_none_is_given() -> None:
    request = standard.sign(_request(), SECRET, NOW)
    assert request.headers["webhook-id"].startswith("msg_")
    assert "." not in request.headers["webhook-id"]
    assert isinstance(_verify(request), Verified)


def test_sign_rejects_unusable_keys() -> None:
    with pytest.raises(ValueError):
        standard.sign(_request(), "whsk_c2hvcnQ=", NOW)
    with pytest.raises(ValueError):
        standard.sign(_request(), "whsec_", NOW)


def test_dev_credentials_sign_and_verify() -> None:
    creds, key = standard.dev_credentials()
    assert key.startswith("whsec_") and creds.secrets == (key,)
    assert isinstance(_verify(standard.sign(_request(), key, NOW), creds), Verified)


# -- extract ---------------------------------------------------------------------------


def test_extract_message_status_keyed_by_message_id() -> None:
    (record,) = standard.extract(_signed())
    assert record.provider_message_id == "sw_msg_0001"
    assert record.message_key == "sw_msg_0001"
    assert record.event_id == "msg_2abc"
    assert record.body is None
    assert record.payload["status"] == "delivered"
    assert record.payload["type"] == "message.status"


def test_extract_other_event_types_yield_nothing() -> None:
    body = json.dumps({"type": "message.received", "data": {"message_id": "x"}}).encode()
    assert standard.extract(_signed(body=body)) == []


def _body(value: object) -> InboundRequest:
    return _signed(body=json.dumps(value).encode())


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        pytest.param(_signed(body=b"{nope"), MalformedPayload, id="malformed"),
        pytest.param(_body([1]), MalformedPayload, id="not-an-object"),
        pytest.param(_body({"data": {}}), InvalidPayload, id="no-type"),
        pytest.param(_body({"type": "message.status"}), InvalidPayload, id="no-data"),
        pytest.param(
            _body({"type": "message.status", "data": {"status": "sent"}}),
            InvalidPayload,
            id="no-message-id",
        ),
        pytest.param(
            _body({"type": "message.status", "data": {"message_id": "m"}}),
            InvalidPayload,
            id="no-status",
        ),
        pytest.param(
            _body({"type": "message.status", "data": {"message_id": "m" * 201, "status": "sent"}}),
            InvalidPayload,
            id="long-id",
        ),
    ],
)
def test_extract_refused(request_: InboundRequest, error: type[IngressError]) -> None:
    with pytest.raises(error):
        standard.extract(request_)
