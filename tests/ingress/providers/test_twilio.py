"""Twilio verifier and extractor: SDK vectors, one valid request, one broken thing per case."""

from __future__ import annotations

import asyncio
import hashlib
from urllib.parse import parse_qsl, urlencode

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
)
from ingress.providers import twilio
from ingress.providers._common import key_id
from ingress.providers._contract import Credentials, InboundRequest, Verified, VerifyContext

NOW = 1_718_000_000
URL = "https://dlr.example.com/webhooks/twilio"
TOKEN = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"
CREDS = Credentials(secrets=(TOKEN,))
FORM = "application/x-www-form-urlencoded"

#: twilio-python tests/unit/test_request_validator.py.
SDK_TOKEN = "12345"
SDK_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
SDK_PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Digits", "1234"),
    ("From", "+14158675309"),
    ("To", "+18005551212"),
    ("Caller", "+14158675309"),
]
SDK_JSON = b'{"property": "value", "boolean": true}'
SDK_JSON_HASH = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"


def _fixture(name: str) -> InboundRequest:
    return next(f for f in load("twilio") if f.name == name).request()


DELIVERED = _fixture("delivered")
BATCH = _fixture("batch")


def _verify(request: InboundRequest, creds: Credentials = CREDS) -> Verified:
    return asyncio.run(twilio.verify(request, creds, VerifyContext(now=NOW)))


def _form(url: str, params: list[tuple[str, str]], signature: str | None = None) -> InboundRequest:
    headers = {"content-type": FORM}
    if signature is not None:
        headers["x-twilio-signature"] = signature
    return InboundRequest("POST", url, headers, urlencode(params).encode())


# -- known answers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "params", "expected"),
    [
        pytest.param(SDK_URL, SDK_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", id="sdk-vector"),
        pytest.param(
            SDK_URL,
            [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")],
            "IK+Dwps556ElfBT0I3Rgjkr1wJU=",
            id="sdk-duplicate-params",
        ),
    ],
)
def test_signature_known_answers(url: str, params: list[tuple[str, str]], expected: str) -> None:
    assert twilio.signature(SDK_TOKEN, url, params, "HMAC_SHA1") == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(SDK_URL, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", id="as-requested"),
        pytest.param(SDK_URL, "kvajT1Ptam85bY51eRf/AJRuM3w=", id="signed-with-443-added"),
        pytest.param(
            SDK_URL.replace(".com", ".com:1234"),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
            id="https-port-removed",
        ),
        pytest.param(
            SDK_URL.replace("https", "http"), "0ZXoZLH/DfblKGATFgpif+LLRf4=", id="signed-with-80"
        ),
        pytest.param(
            SDK_URL.replace(".com", ".com:1234").replace("https", "http"),
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=",
            id="http-port-kept",
        ),
    ],
)
def test_sdk_vectors_verify_with_and_without_port(url: str, expected: str) -> None:
    creds = Credentials(secrets=(SDK_TOKEN,))
    verified = _verify(_form(url, SDK_PARAMS, expected), creds)
    assert verified == Verified(key_id=key_id(SDK_TOKEN), replay_key=expected)


def test_sdk_json_body_vector_verifies() -> None:
    assert hashlib.sha256(SDK_JSON).hexdigest() == SDK_JSON_HASH
    request = InboundRequest(
        "POST",
        f"{SDK_URL}&bodySHA256={SDK_JSON_HASH}",
        {"content-type": "application/json", "x-twilio-signature": "a9nBmqA0ju/hNViExpshrM61xv4="},
        SDK_JSON,
    )
    assert _verify(request, Credentials(secrets=(SDK_TOKEN,))).key_id == key_id(SDK_TOKEN)
    with pytest.raises(BadSignature):
        _verify(
            request.with_(body=SDK_JSON.replace(b"true", b"false")),
            Credentials(secrets=(SDK_TOKEN,)),
        )


# -- one valid request, one broken thing ----------------------------------------------


def _signed(request: InboundRequest = DELIVERED, key: str = TOKEN) -> InboundRequest:
    return twilio.sign(request, key, NOW)


def test_valid_request_is_accepted() -> None:
    signed = _signed()
    verified = _verify(signed)
    assert verified.key_id == key_id(TOKEN)
    assert verified.replay_key == signed.headers["x-twilio-signature"]
    assert verified.signed_at is None


def test_rotation_second_active_token_is_accepted() -> None:
    assert _verify(_signed(), Credentials(secrets=(OTHER, TOKEN))).key_id == key_id(TOKEN)


def test_form_params_are_order_independent() -> None:
    """Twilio sorts the parameters, so the body order the proxy kept does not matter."""
    signed = _signed()
    reordered = "&".join(reversed(signed.body.decode().split("&"))).encode()
    assert _verify(signed.with_(body=reordered)).key_id == key_id(TOKEN)


def test_signature_covers_the_callback_query() -> None:
    request = DELIVERED.with_(url=URL + "?tenant=acme")
    signed = _signed(request)
    assert _verify(signed).key_id == key_id(TOKEN)
    with pytest.raises(BadSignature):
        _verify(signed.with_(url=URL + "?tenant=other"))


def test_get_callback_signs_the_url_only() -> None:
    url = URL + "?" + DELIVERED.body.decode()
    signed = _signed(InboundRequest("GET", url, {}, b""))
    assert _verify(signed).key_id == key_id(TOKEN)
    with pytest.raises(BadSignature):
        _verify(signed.with_(url=url.replace("delivered", "failed")))


def test_webhook_settings_shared_key_uses_hmac_sha256() -> None:
    settings = {"x-twilio-webhooks-signature-settings": "key=HK123,algorithm=HMAC_SHA256"}
    request = DELIVERED.with_(headers={**DELIVERED.headers, **settings})
    signed = _signed(request, key=OTHER)
    params = parse_qsl(DELIVERED.body.decode())
    expected = twilio.signature(OTHER, URL, params, "HMAC_SHA256")
    assert signed.headers["x-twilio-signature"] == expected
    assert len(expected) == 44  # base64 of a 32-byte SHA-256 MAC
    assert _verify(signed, Credentials(secrets=(TOKEN, OTHER))).key_id == key_id(OTHER)
    # The same SHA-256 signature without the settings header is checked as SHA-1: refused.
    plain = signed.with_(headers={k: v for k, v in signed.headers.items() if k not in settings})
    with pytest.raises(BadSignature):
        _verify(plain, Credentials(secrets=(TOKEN, OTHER)))


def test_event_streams_array_is_signed_with_body_hash() -> None:
    signed = _signed(BATCH)
    assert f"bodySHA256={hashlib.sha256(BATCH.body).hexdigest()}" in signed.url
    assert _verify(signed).key_id == key_id(TOKEN)


def _headers(request: InboundRequest, **changes: str | None) -> InboundRequest:
    headers = dict(request.headers)
    for name, value in changes.items():
        name = name.replace("_", "-")
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return request.with_(headers=headers)


SIGNED = _signed()
SIGNED_BATCH = _signed(BATCH)


@pytest.mark.parametrize(
    ("request_", "creds", "error"),
    [
        pytest.param(
            SIGNED.with_(body=SIGNED.body.replace(b"delivered", b"failed")),
            CREDS,
            BadSignature,
            id="tampered-status",
        ),
        pytest.param(
            SIGNED.with_(body=SIGNED.body + b"&Extra=1"), CREDS, BadSignature, id="added-param"
        ),
        pytest.param(_signed(key=OTHER), CREDS, BadSignature, id="wrong-token"),
        pytest.param(
            SIGNED.with_(url=URL.replace("webhooks", "hooks")), CREDS, BadSignature, id="other-path"
        ),
        pytest.param(
            SIGNED.with_(url=URL.replace("https", "http")), CREDS, BadSignature, id="other-scheme"
        ),
        pytest.param(
            _headers(SIGNED, x_twilio_signature="not-a-signature"),
            CREDS,
            BadSignature,
            id="garbage-signature",
        ),
        pytest.param(
            _headers(SIGNED, x_twilio_webhooks_signature_settings="key=HK1,algorithm=HMAC_MD5"),
            CREDS,
            BadSignature,
            id="unsupported-algorithm",
        ),
        pytest.param(
            SIGNED_BATCH.with_(body=SIGNED_BATCH.body.replace(b"DELIVERED", b"FAILED")),
            CREDS,
            BadSignature,
            id="json-body-hash-mismatch",
        ),
        pytest.param(SIGNED_BATCH.with_(url=URL), CREDS, BadSignature, id="json-without-body-hash"),
        pytest.param(
            _headers(SIGNED, x_twilio_signature=None), CREDS, MissingHeader, id="no-signature"
        ),
        pytest.param(
            _headers(SIGNED, x_twilio_signature=""), CREDS, MissingHeader, id="empty-signature"
        ),
        pytest.param(SIGNED, Credentials(), NoCredentials, id="no-credentials"),
        pytest.param(
            SIGNED, Credentials(public_keys=("x",)), NoCredentials, id="public-key-only-credentials"
        ),
        pytest.param(SIGNED.with_(body=b"\xff\xfe"), CREDS, MalformedPayload, id="form-not-utf8"),
    ],
)
def test_refused(request_: InboundRequest, creds: Credentials, error: type[IngressError]) -> None:
    with pytest.raises(error):
        _verify(request_, creds)


def test_dev_credentials_sign_and_verify() -> None:
    creds, key = twilio.dev_credentials()
    assert _verify(twilio.sign(DELIVERED, key, NOW), creds).key_id == key_id(key)


# -- extract --------------------------------------------------------------------------


def test_extract_form_callback_is_one_record() -> None:
    (record,) = twilio.extract(DELIVERED)
    assert record.provider_message_id == "SM1f0e8ae6ade43cb3c0ce4525424e404f"
    assert record.message_key == record.provider_message_id
    assert record.event_id is None
    assert record.body is None
    assert record.payload["MessageStatus"] == "delivered"
    assert record.payload["RawDlrDoneDate"] == "2301151230"


def test_extract_reads_query_and_body_body_wins() -> None:
    request = DELIVERED.with_(url=URL + "?tenant=acme&MessageStatus=sent")
    (record,) = twilio.extract(request)
    assert record.payload["tenant"] == "acme"
    assert record.payload["MessageStatus"] == "delivered"


def test_extract_get_callback_from_query() -> None:
    request = InboundRequest("GET", URL + "?" + DELIVERED.body.decode(), {}, b"")
    (record,) = twilio.extract(request)
    assert record.message_key == "SM1f0e8ae6ade43cb3c0ce4525424e404f"


def test_extract_legacy_sms_names() -> None:
    body = urlencode([("SmsSid", "SM1"), ("SmsStatus", "sent")]).encode()
    (record,) = twilio.extract(DELIVERED.with_(body=body))
    assert record.message_key == "SM1"


def test_extract_event_streams_splits_per_message_event() -> None:
    records = twilio.extract(_signed(BATCH))
    events = orjson.loads(BATCH.body)
    assert [r.message_key for r in records] == [
        "SM0000000000000000000000000000001",
        "SM0000000000000000000000000000002",
    ]
    assert [r.event_id for r in records] == [
        "NO0000000000000000000000000000001",
        "NO0000000000000000000000000000002",
    ]
    assert [r.body for r in records] == [orjson.dumps(events[0]), orjson.dumps(events[2])]
    assert records[1].payload["errorCode"] == 30005
    assert records[1].payload["eventType"] == "com.twilio.messaging.message.undelivered"


def test_extract_single_cloudevent_without_status_uses_the_type() -> None:
    event = {
        "type": "com.twilio.messaging.message.sent",
        "id": "NO1",
        "data": {"messageSid": "SM9", "to": "+12345678901"},
    }
    request = BATCH.with_(body=orjson.dumps(event))
    (record,) = twilio.extract(request)
    assert (record.message_key, record.event_id, record.body) == ("SM9", "NO1", None)
    assert record.payload["messageStatus"] == "SENT"


def test_extract_ignores_inbound_messages() -> None:
    body = urlencode([("MessageSid", "SM1"), ("SmsStatus", "received"), ("Body", "hi")])
    assert twilio.extract(DELIVERED.with_(body=body.encode())) == []


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        pytest.param(DELIVERED.with_(body=b"\xff"), MalformedPayload, id="form-not-utf8"),
        pytest.param(DELIVERED.with_(body=b"a=1&&&b"), MalformedPayload, id="form-does-not-parse"),
        pytest.param(BATCH.with_(body=b"[{oops"), MalformedPayload, id="json-not-json"),
        pytest.param(BATCH.with_(body=b'"text"'), MalformedPayload, id="json-not-events"),
        pytest.param(BATCH.with_(body=b"[1]"), InvalidPayload, id="json-item-not-object"),
        pytest.param(
            BATCH.with_(body=b'[{"type":"com.twilio.messaging.message.sent","data":1}]'),
            InvalidPayload,
            id="event-without-data",
        ),
        pytest.param(
            BATCH.with_(body=b'[{"type":"com.twilio.messaging.message.sent","data":{}}]'),
            InvalidPayload,
            id="event-without-sid",
        ),
        pytest.param(DELIVERED.with_(body=b"MessageStatus=delivered"), InvalidPayload, id="no-sid"),
        pytest.param(DELIVERED.with_(body=b"MessageSid=SM1"), InvalidPayload, id="no-status"),
        pytest.param(
            DELIVERED.with_(body=b"MessageSid=" + b"S" * 201 + b"&MessageStatus=sent"),
            InvalidPayload,
            id="long-sid",
        ),
    ],
)
def test_extract_refuses(request_: InboundRequest, error: type[IngressError]) -> None:
    with pytest.raises(error):
        twilio.extract(request_)
