"""Vonage verifier and extractor: SDK vectors, one valid receipt, one broken thing per case."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl, urlencode, urlsplit

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
from ingress.providers import vonage
from ingress.providers._common import key_id
from ingress.providers._contract import Credentials, InboundRequest, Verified, VerifyContext

NOW = 1_718_000_000
URL = "https://dlr.example.com/webhooks/vonage"
SECRET = "vonage-signature-secret"
OTHER = "another-signature-secret"
CREDS = Credentials(secrets=(SECRET,))
FORM = "application/x-www-form-urlencoded"


def _fixture(name: str) -> InboundRequest:
    return next(f for f in load("vonage") if f.name == name).request()


GET = _fixture("delivered")  # doc example as query parameters
POST_FORM = _fixture("opted_out")
POST_JSON = _fixture("expired")


def _verify(request: InboundRequest, creds: Credentials = CREDS, now: float = NOW) -> Verified:
    return asyncio.run(vonage.verify(request, creds, VerifyContext(now=now)))


def _creds(method: str, *secrets: str) -> Credentials:
    return Credentials(secrets=secrets, options={"signature_method": method})


# -- known answers --------------------------------------------------------------------

#: vonage-python-sdk v4 http_client/tests/test_auth.py.
V4 = {"param1": "value1", "param2": "value2", "timestamp": 1234567890}


@pytest.mark.parametrize(
    ("params", "secret", "method", "expected"),
    [
        pytest.param(
            V4,
            "signature_secret",
            "sha256",
            "280c4320703dbc98bfa22db676655ed2acfbfe8792b062ff7622e67f1183c287",
            id="v4-hmac-sha256",
        ),
        pytest.param(
            V4, "signature_secret", "md5", "724c2bf6ca423c36e20631b11d1c5753", id="v4-hmac-md5"
        ),
        pytest.param(
            {"param1": "value&1", "param2": "value=2", "timestamp": 1234567890},
            "signature_secret",
            "md5",
            "2bbf0abafb2c55e5af6231513896a2ac",
            id="v4-hmac-md5-escaped-values",
        ),
        pytest.param(
            {"param": "value", "timestamp": 1234567890, "sig": "ignored"},
            "signature_secret",
            "md5",
            "655a4d0b7f064dff438defc52b012cf5",
            id="v4-check-signature",
        ),
        # Legacy v3 client tests/test_signature.py: plain "MD5 hash" (secret appended).
        pytest.param(
            {"a": "1", "b": "2", "timestamp": "1461605396"},
            "secret",
            "md5hash",
            "6af838ef94998832dbfc29020b564830",
            id="v3-md5hash",
        ),
    ],
)
def test_signature_known_answers(
    params: dict[str, object], secret: str, method: str, expected: str
) -> None:
    assert vonage.signature(params, secret, method) == expected


def test_sdk_check_signature_vector_verifies_as_a_get() -> None:
    url = (
        URL
        + "?"
        + urlencode(
            {"param": "value", "timestamp": "1234567890", "sig": "655A4D0B7F064DFF438DEFC52B012CF5"}
        )
    )
    request = InboundRequest("GET", url, {}, b"")
    verified = _verify(request, _creds("md5", "signature_secret"), now=1234567890)
    assert verified == Verified(
        key_id=key_id("signature_secret"),
        replay_key="655a4d0b7f064dff438defc52b012cf5",
        signed_at=1234567890.0,
    )
    with pytest.raises(StaleTimestamp):
        _verify(request, _creds("md5", "signature_secret"), now=NOW)


# -- one valid request, one broken thing ----------------------------------------------


def _signed(
    request: InboundRequest = POST_FORM, key: str = SECRET, now: int = NOW
) -> InboundRequest:
    return vonage.sign(request, key, now)


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(GET, id="get-query"),
        pytest.param(POST_FORM, id="post-form"),
        pytest.param(POST_JSON, id="post-json"),
    ],
)
def test_valid_request_is_accepted(request_: InboundRequest) -> None:
    signed = _signed(request_)
    verified = _verify(signed)
    assert verified.key_id == key_id(SECRET)
    assert verified.signed_at == NOW
    params = dict(parse_qsl(urlsplit(signed.url).query or signed.body.decode()))
    if request_ is POST_JSON:
        params = orjson.loads(signed.body)
    # no method configured: sha256, Vonage's strongest common one (not its md5hash default)
    assert verified.replay_key == vonage.signature(params, SECRET, "sha256")
    assert len(verified.replay_key) == 64


def test_md5hash_named_explicitly_keeps_working_and_only_then() -> None:
    params = dict(parse_qsl(POST_FORM.body.decode()))
    params.update(timestamp=str(NOW), nonce="n1")
    params["sig"] = vonage.signature(params, SECRET, "md5hash")
    request = POST_FORM.with_(body=urlencode(params).encode())
    assert _verify(request, _creds("md5hash", SECRET)).replay_key == params["sig"]
    for creds in (CREDS, _creds("sha256", SECRET)):
        with pytest.raises(BadSignature, match="md5hash signature but sha256 is configured"):
            _verify(request, creds)
    # a wrong md5hash signature gets the ordinary answer (no hint without the secret)
    forged = request.with_(body=request.body.replace(params["sig"].encode(), b"0" * 32))
    with pytest.raises(BadSignature, match="does not match an active signature secret"):
        _verify(forged, CREDS)


def test_md5_methods_are_the_weak_ones() -> None:
    assert {"md5hash", "md5"} == vonage.WEAK_METHODS
    assert vonage.DEFAULT_METHOD not in vonage.WEAK_METHODS


@pytest.mark.parametrize("method", sorted(vonage.METHOD_NAMES))
def test_every_configured_method_verifies_its_own_signature(method: str) -> None:
    params = dict(parse_qsl(POST_FORM.body.decode()))
    params.update(timestamp=str(NOW), nonce="n1")
    params["sig"] = vonage.signature(params, SECRET, method)
    request = POST_FORM.with_(body=urlencode(params).encode())
    assert _verify(request, _creds(method, SECRET)).replay_key == params["sig"]
    others = vonage.METHOD_NAMES - {method}
    for other in others:
        with pytest.raises(BadSignature):
            _verify(request, _creds(other, SECRET))


def test_rotation_second_active_secret_is_accepted() -> None:
    assert _verify(_signed(), Credentials(secrets=(OTHER, SECRET))).key_id == key_id(SECRET)


def test_upper_case_sig_is_accepted() -> None:
    signed = _signed()
    params = dict(parse_qsl(signed.body.decode()))
    params["sig"] = params["sig"].upper()
    assert _verify(signed.with_(body=urlencode(params).encode())).key_id == key_id(SECRET)


def _edit(request: InboundRequest, **changes: str | None) -> InboundRequest:
    """Change form parameters of a signed POST without re-signing."""
    params = dict(parse_qsl(request.body.decode(), keep_blank_values=True))
    for name, value in changes.items():
        name = name.replace("_", "-")
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    return request.with_(body=urlencode(params).encode())


SIGNED = _signed()
SIGNED_GET = _signed(GET)
SIGNED_JSON = _signed(POST_JSON)


@pytest.mark.parametrize(
    ("request_", "creds", "error"),
    [
        pytest.param(_edit(SIGNED, status="delivered"), CREDS, BadSignature, id="tampered-status"),
        pytest.param(_edit(SIGNED, err_code="0"), CREDS, BadSignature, id="tampered-err-code"),
        pytest.param(_edit(SIGNED, extra="1"), CREDS, BadSignature, id="added-param"),
        pytest.param(_edit(SIGNED, nonce="other"), CREDS, BadSignature, id="nonce-swapped"),
        pytest.param(
            _edit(SIGNED, timestamp=str(NOW + 1)), CREDS, BadSignature, id="timestamp-swapped"
        ),
        pytest.param(_signed(key=OTHER), CREDS, BadSignature, id="wrong-secret"),
        pytest.param(_edit(SIGNED, sig="0" * 32), CREDS, BadSignature, id="garbage-signature"),
        pytest.param(SIGNED, _creds("md5hash", SECRET), BadSignature, id="other-method"),
        pytest.param(
            SIGNED_GET.with_(url=SIGNED_GET.url.replace("delivered", "failed")),
            CREDS,
            BadSignature,
            id="get-tampered-status",
        ),
        pytest.param(
            SIGNED_JSON.with_(body=SIGNED_JSON.body.replace(b"expired", b"delivered")),
            CREDS,
            BadSignature,
            id="json-tampered-status",
        ),
        pytest.param(_signed(now=NOW - 301), CREDS, StaleTimestamp, id="stale-timestamp"),
        pytest.param(_signed(now=NOW + 301), CREDS, StaleTimestamp, id="future-timestamp"),
        pytest.param(
            _edit(SIGNED, timestamp="soon"), CREDS, StaleTimestamp, id="timestamp-not-int"
        ),
        pytest.param(_edit(SIGNED, sig=None), CREDS, MissingHeader, id="no-sig"),
        pytest.param(_edit(SIGNED, sig=""), CREDS, MissingHeader, id="empty-sig"),
        pytest.param(_edit(SIGNED, timestamp=None), CREDS, MissingHeader, id="no-timestamp"),
        pytest.param(POST_FORM, CREDS, MissingHeader, id="unsigned-receipt"),
        pytest.param(SIGNED, Credentials(), NoCredentials, id="no-credentials"),
        pytest.param(SIGNED, _creds("crc32", SECRET), NoCredentials, id="unknown-method"),
        pytest.param(SIGNED_JSON.with_(body=b"{oops"), CREDS, MalformedPayload, id="json-not-json"),
    ],
)
def test_refused(request_: InboundRequest, creds: Credentials, error: type[IngressError]) -> None:
    with pytest.raises(error):
        _verify(request_, creds)


def test_post_query_string_is_neither_signed_nor_read() -> None:
    signed = _signed()
    moved = signed.with_(url=URL + "?status=delivered")
    assert _verify(moved).key_id == key_id(SECRET)
    (record,) = vonage.extract(moved)
    assert record.payload["status"] == "failed"


def test_sign_get_puts_everything_in_the_query() -> None:
    query = dict(parse_qsl(urlsplit(SIGNED_GET.url).query))
    assert {"timestamp", "nonce", "sig", "messageId"} <= set(query)
    assert SIGNED_GET.body == b""


def test_dev_credentials_sign_and_verify() -> None:
    creds, key = vonage.dev_credentials()
    assert creds.options["signature_method"] == "sha256"
    assert _verify(vonage.sign(POST_FORM, key, NOW), creds).key_id == key_id(key)


# -- extract --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "message_id"),
    [
        pytest.param(GET, "0B00000127FDBC63", id="get"),
        pytest.param(POST_FORM, "aaaaaaaa-bbbb-cccc-dddd-0123456789ab", id="post-form"),
        pytest.param(POST_JSON, "0C00000127FDBC65", id="post-json"),
    ],
)
def test_extract_is_one_record_keyed_by_message_id(
    request_: InboundRequest, message_id: str
) -> None:
    (record,) = vonage.extract(_signed(request_))
    assert record.provider_message_id == record.message_key == message_id
    assert record.event_id is None
    assert record.body is None
    assert {"status", "err-code", "msisdn", "sig"} <= set(record.payload)


def _json(**fields: object) -> InboundRequest:
    return POST_JSON.with_(body=orjson.dumps(fields))


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        pytest.param(POST_FORM.with_(body=b"\xff"), MalformedPayload, id="form-not-utf8"),
        pytest.param(POST_FORM.with_(body=b"a&&b=1"), MalformedPayload, id="form-does-not-parse"),
        pytest.param(POST_JSON.with_(body=b"{oops"), MalformedPayload, id="json-not-json"),
        pytest.param(POST_JSON.with_(body=b"[]"), MalformedPayload, id="json-not-object"),
        pytest.param(_json(status="delivered"), InvalidPayload, id="no-message-id"),
        pytest.param(_json(messageId=7, status="delivered"), InvalidPayload, id="message-id-int"),
        pytest.param(_json(messageId="M" * 201, status="x"), InvalidPayload, id="long-message-id"),
        pytest.param(_json(messageId="M1"), InvalidPayload, id="no-status"),
        pytest.param(InboundRequest("GET", URL, {}, b""), InvalidPayload, id="get-without-params"),
    ],
)
def test_extract_refuses(request_: InboundRequest, error: type[IngressError]) -> None:
    with pytest.raises(error):
        vonage.extract(request_)
