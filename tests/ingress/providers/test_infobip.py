"""Infobip verifier and extractor: one valid signed request, then one broken thing per case.

Infobip publishes no signature vector and does not document the HMAC header or signed
bytes (see the module docstring); the known-answer test pins our assumed scheme to the
standard library's HMAC so a refactor cannot silently change it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac

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
from ingress.providers import infobip
from ingress.providers._common import key_id
from ingress.providers._contract import Credentials, InboundRequest, Verified, VerifyContext

NOW = 1_718_000_000
URL = "https://dlr.example.com/webhooks/infobip"
SECRET = "infobip-test-secret"
OTHER = "another-secret"
CREDS = Credentials(secrets=(SECRET,))
BASIC = Credentials(basic=(("infobip", "s3cret:with:colons"),))


def _fixture(name: str) -> bytes:
    return next(f for f in load("infobip") if f.name == name).body


BODY = _fixture("delivered")


def _request(body: bytes = BODY, headers: dict[str, str] | None = None) -> InboundRequest:
    return InboundRequest(
        method="POST",
        url=URL,
        headers={"content-type": "application/json", **(headers or {})},
        body=body,
    )


def _verify(request: InboundRequest, creds: Credentials = CREDS) -> Verified:
    return asyncio.run(infobip.verify(request, creds, VerifyContext(now=NOW)))


def _signed(body: bytes = BODY, key: str = SECRET) -> InboundRequest:
    return infobip.sign(_request(body), key, NOW)


def _hmac(body: bytes, secret: str = SECRET, algorithm: str = "sha256") -> bytes:
    return hmac.new(secret.encode(), body, getattr(hashlib, algorithm)).digest()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_known_answer_assumed_scheme() -> None:
    body = b'{"results":[]}'
    signed = infobip.sign(_request(body), "key", NOW)
    expected = "f8b300d5425d163e62d4b92c64f1709092812f121a04faeb3bc0ce9081f3316a"
    assert signed.headers["x-hub-signature"] == expected
    assert _verify(signed, Credentials(secrets=("key",))).replay_key == expected


def test_valid_request_is_accepted() -> None:
    verified = _verify(_signed())
    assert verified == Verified(key_id=key_id(SECRET), replay_key=_hmac(BODY).hex())


def test_rotation_second_active_secret_is_accepted() -> None:
    verified = _verify(_signed(), Credentials(secrets=(OTHER, SECRET)))
    assert verified.key_id == key_id(SECRET)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        pytest.param("x-hub-signature", _hmac(BODY).hex().upper(), id="hex-upper"),
        pytest.param("x-hub-signature", "sha256=" + _hmac(BODY).hex(), id="sha256-prefix"),
        pytest.param("x-hub-signature", base64.b64encode(_hmac(BODY)).decode(), id="base64"),
        pytest.param(
            "x-hub-signature", base64.urlsafe_b64encode(_hmac(BODY)).decode(), id="base64url"
        ),
        pytest.param("x-infobip-signature", _hmac(BODY).hex(), id="infobip-header"),
        pytest.param("x-signature", _hmac(BODY).hex(), id="generic-header"),
        pytest.param("x-hub-signature", _hmac(BODY, algorithm="sha512").hex(), id="sha512"),
        pytest.param("x-hub-signature", _hmac(BODY, algorithm="sha1").hex(), id="sha1"),
        pytest.param("x-hub-signature", _hmac(BODY, algorithm="md5").hex(), id="md5"),
        pytest.param(
            "x-hub-signature", "sha384=" + _hmac(BODY, algorithm="sha384").hex(), id="sha384"
        ),
    ],
)
def test_accepted_signature_encodings(header: str, value: str) -> None:
    verified = _verify(_request(headers={header: value}))
    assert verified.key_id == key_id(SECRET)


def test_configured_header_and_algorithm() -> None:
    creds = Credentials(
        secrets=(SECRET,),
        options={"signature_header": "X-My-Sig", "hmac_algorithm": "HMAC_SHA_512"},
    )
    signature = _hmac(BODY, algorithm="sha512").hex()
    assert _verify(_request(headers={"x-my-sig": signature}), creds).key_id == key_id(SECRET)
    with pytest.raises(MissingHeader):  # the default header is not looked at any more
        _verify(_request(headers={"x-hub-signature": signature}), creds)
    with pytest.raises(BadSignature):  # a different algorithm is refused
        _verify(_request(headers={"x-my-sig": _hmac(BODY).hex()}), creds)


def test_basic_auth_is_accepted() -> None:
    request = _request(headers={"authorization": _basic("infobip", "s3cret:with:colons")})
    verified = _verify(request, BASIC)
    assert verified.key_id == key_id("infobip:s3cret:with:colons")
    assert verified.replay_key == hashlib.sha256(BODY).hexdigest()


def test_basic_auth_rotation_second_pair_is_accepted() -> None:
    creds = Credentials(basic=(("old", "pw1"), ("new", "pw2")))
    verified = _verify(_request(headers={"authorization": _basic("new", "pw2")}), creds)
    assert verified.key_id == key_id("new:pw2")


def test_hmac_and_basic_configured_basic_used_without_signature() -> None:
    creds = Credentials(secrets=(SECRET,), basic=(("u", "p"),))
    assert _verify(_signed(), creds).key_id == key_id(SECRET)
    assert _verify(_request(headers={"authorization": _basic("u", "p")}), creds).key_id == key_id(
        "u:p"
    )


def _with(headers: dict[str, str], body: bytes = BODY) -> InboundRequest:
    return _request(body, headers)


@pytest.mark.parametrize(
    ("request_", "creds", "error"),
    [
        pytest.param(_signed().with_(body=BODY + b" "), CREDS, BadSignature, id="tampered-body"),
        pytest.param(
            _signed().with_(body=BODY.replace(b"DELIVERED_TO_HANDSET", b"REJECTED_NETWORK")),
            CREDS,
            BadSignature,
            id="tampered-status",
        ),
        pytest.param(_signed(key=OTHER), CREDS, BadSignature, id="wrong-secret"),
        pytest.param(
            _with({"x-hub-signature": "zz-not-hex-or-b64!"}), CREDS, BadSignature, id="junk"
        ),
        pytest.param(_with({"x-hub-signature": "abcd"}), CREDS, BadSignature, id="too-short"),
        pytest.param(
            _with({"x-hub-signature": "sha1=" + _hmac(BODY).hex()}),
            CREDS,
            BadSignature,
            id="prefix-disagrees",
        ),
        pytest.param(_request(), CREDS, MissingHeader, id="no-signature"),
        pytest.param(
            _with({"authorization": _basic("u", "p")}), CREDS, MissingHeader, id="basic-not-enabled"
        ),
        pytest.param(_request(), BASIC, MissingHeader, id="no-authorization"),
        pytest.param(
            _with({"authorization": _basic("infobip", "wrong")}), BASIC, BadSignature, id="bad-pw"
        ),
        pytest.param(
            _with({"authorization": _basic("other", "s3cret:with:colons")}),
            BASIC,
            BadSignature,
            id="bad-user",
        ),
        pytest.param(
            _with({"authorization": "Bearer abc"}), BASIC, BadSignature, id="not-basic-scheme"
        ),
        pytest.param(
            _with({"authorization": "Basic !!!"}), BASIC, BadSignature, id="basic-not-base64"
        ),
        pytest.param(_signed(), BASIC, MissingHeader, id="hmac-when-only-basic"),
        pytest.param(_signed(), Credentials(), NoCredentials, id="no-credentials"),
        pytest.param(
            _signed(), Credentials(public_keys=("k",)), NoCredentials, id="key-not-secret"
        ),
    ],
)
def test_refused(request_: InboundRequest, creds: Credentials, error: type[IngressError]) -> None:
    with pytest.raises(error):
        _verify(request_, creds)


def test_dev_credentials_sign_and_verify() -> None:
    creds, key = infobip.dev_credentials()
    assert _verify(infobip.sign(_request(), key, NOW), creds).key_id == key_id(key)


# -- extract -------------------------------------------------------------------------


def test_extract_single_result() -> None:
    (record,) = infobip.extract(_request(BODY))
    item = orjson.loads(BODY)["results"][0]
    assert record.provider_message_id == "MESSAGE-ID-123-xyz"
    assert record.message_key == "MESSAGE-ID-123-xyz"
    assert record.event_id is None
    assert record.payload == item
    assert record.body is not None and orjson.loads(record.body) == item


def test_extract_splits_batches_per_result() -> None:
    records = infobip.extract(_request(_fixture("batch")))
    assert [r.message_key for r in records] == [
        "MESSAGE-ID-021-xyz",
        "MESSAGE-ID-022-xyz",
        "MESSAGE-ID-023-xyz",
    ]
    assert [r.provider_message_id for r in records] == [r.message_key for r in records]
    items = orjson.loads(_fixture("batch"))["results"]
    assert [orjson.loads(r.body or b"") for r in records] == items


def test_extract_empty_results_is_no_records() -> None:
    assert infobip.extract(_request(b'{"results":[]}')) == []


def test_extract_status_id_without_name_is_enough() -> None:
    body = orjson.dumps({"results": [{"messageId": "m1", "status": {"id": 5}}]})
    (record,) = infobip.extract(_request(body))
    assert record.message_key == "m1"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param(b"results", MalformedPayload, id="not-json"),
        pytest.param(b"\xff\xfe", MalformedPayload, id="not-utf8"),
        pytest.param(b"[1]", MalformedPayload, id="not-object"),
        pytest.param(b"{}", InvalidPayload, id="no-results"),
        pytest.param(b'{"results":{}}', InvalidPayload, id="results-not-list"),
        pytest.param(b'{"results":[1]}', InvalidPayload, id="result-not-object"),
        pytest.param(
            b'{"results":[{"status":{"name":"DELIVERED_TO_HANDSET"}}]}',
            InvalidPayload,
            id="no-message-id",
        ),
        pytest.param(b'{"results":[{"messageId":"m"}]}', InvalidPayload, id="no-status"),
        pytest.param(
            b'{"results":[{"messageId":"m","status":{"groupId":3}}]}',
            InvalidPayload,
            id="status-without-name-or-id",
        ),
        pytest.param(
            orjson.dumps({"results": [{"messageId": "m" * 201, "status": {"id": 5}}]}),
            InvalidPayload,
            id="long-message-id",
        ),
    ],
)
def test_extract_refuses(body: bytes, error: type[IngressError]) -> None:
    with pytest.raises(error):
        infobip.extract(_request(body))
