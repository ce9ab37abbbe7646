"""Plivo V3 verifier and extractor: vectors, one valid callback, one broken thing per case."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

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
from ingress.providers import plivo
from ingress.providers._common import key_id
from ingress.providers._contract import Credentials, InboundRequest, Verified, VerifyContext

NOW = 1_718_000_000
URL = "https://dlr.example.com/webhooks/plivo"
TOKEN = "plivo-auth-token"
OTHER = "plivo-other-token"
CREDS = Credentials(secrets=(TOKEN,))
FORM = "application/x-www-form-urlencoded"
SIG = "x-plivo-signature-v3"
NONCE = "x-plivo-signature-v3-nonce"


def _fixture(name: str) -> InboundRequest:
    return next(f for f in load("plivo") if f.name == name).request()


POST = _fixture("delivered")
GET = _fixture("sent")


def _verify(request: InboundRequest, creds: Credentials = CREDS) -> Verified:
    return asyncio.run(plivo.verify(request, creds, VerifyContext(now=NOW)))


# -- known answers --------------------------------------------------------------------

#: plivo-python's V3 signature code run on these inputs (Plivo publishes no V3 vector).
V3_URL = "https://example.com/plivo/status?b=2&a=1"
V3_TOKEN = "MAXXXXXXXXXXXXXXXXXX-AUTH-TOKEN"
V3_NONCE = "05429567804466091622"
V3_PARAMS = [
    ("MessageUUID", "db3ce55a-7f1d-11e1-8ea7-1231380bc196"),
    ("Status", "delivered"),
    ("To", "14155551212"),
    ("From", "14155550000"),
    ("ErrorCode", "000"),
]
V3_POST = InboundRequest(
    "POST",
    V3_URL,
    {"content-type": FORM, SIG: "bcwK+AjjERTuHpN+3pG0XLkDX1KXkSomMd9ThfhStt0=", NONCE: V3_NONCE},
    urlencode(V3_PARAMS).encode(),
)
V3_GET = InboundRequest(
    "GET",
    V3_URL + "&" + urlencode(V3_PARAMS),
    {SIG: "oqqBvhanWThLfqpgStzHucR8VMDtr7Of5N1EQfTp9h4=", NONCE: V3_NONCE},
    b"",
)


def test_v3_post_string_to_sign() -> None:
    assert plivo.signed_url(V3_POST) == (
        "https://example.com/plivo/status?a=1&b=2.ErrorCode000From14155550000"
        "MessageUUIDdb3ce55a-7f1d-11e1-8ea7-1231380bc196StatusdeliveredTo14155551212"
    )


def test_v3_get_string_to_sign() -> None:
    assert plivo.signed_url(V3_GET) == (
        "https://example.com/plivo/status?ErrorCode=000&From=14155550000"
        "&MessageUUID=db3ce55a-7f1d-11e1-8ea7-1231380bc196&Status=delivered"
        "&To=14155551212&a=1&b=2"
    )


@pytest.mark.parametrize(
    "request_", [pytest.param(V3_POST, id="post"), pytest.param(V3_GET, id="get")]
)
def test_v3_vectors_verify(request_: InboundRequest) -> None:
    verified = _verify(request_, Credentials(secrets=(V3_TOKEN,)))
    assert verified == Verified(
        key_id=key_id(V3_TOKEN), replay_key=f"{V3_NONCE}:{request_.headers[SIG]}"
    )
    with pytest.raises(BadSignature):
        _verify(request_, Credentials(secrets=(V3_TOKEN + "x",)))


def test_published_v2_vector_is_not_accepted() -> None:
    """plivo-python tests/resources/test_signature.py: V2 signs URL + nonce only, no params."""
    request = InboundRequest(
        "POST",
        "https://answer.url",
        {
            "content-type": FORM,
            "x-plivo-signature-v2": "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc=",
            "x-plivo-signature-v2-nonce": "12345",
        },
        b"",
    )
    with pytest.raises(MissingHeader):
        _verify(request, Credentials(secrets=("my_auth_token",)))


# -- string-to-sign shapes ------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "body", "expected"),
    [
        pytest.param("POST", URL, b"B=2&A=1", f"{URL}?A1B2", id="post-no-query"),
        pytest.param("POST", URL + "?y=2&x=1", b"", f"{URL}?x=1&y=2", id="post-no-body"),
        pytest.param("POST", URL, b"", URL, id="post-nothing"),
        pytest.param("GET", URL, b"", URL, id="get-nothing"),
        pytest.param(
            "POST", URL, b"A=2&A=1&B=x+y", f"{URL}?A1A2Bx y", id="post-repeated-and-decoded"
        ),
        pytest.param(
            "GET", URL + "?b=%2B1&a=2&a=1", b"", f"{URL}?a=1&a=2&b=+1", id="get-repeated-decoded"
        ),
    ],
)
def test_signed_url_shapes(method: str, url: str, body: bytes, expected: str) -> None:
    request = InboundRequest(method, url, {"content-type": FORM}, body)
    assert plivo.signed_url(request) == expected


# -- one valid request, one broken thing ----------------------------------------------


def _signed(request: InboundRequest = POST, key: str = TOKEN) -> InboundRequest:
    return plivo.sign(request, key, NOW)


@pytest.mark.parametrize(
    "request_", [pytest.param(POST, id="post-form"), pytest.param(GET, id="get-query")]
)
def test_valid_request_is_accepted(request_: InboundRequest) -> None:
    signed = _signed(request_)
    verified = _verify(signed)
    assert verified.key_id == key_id(TOKEN)
    assert verified.replay_key == f"{signed.headers[NONCE]}:{signed.headers[SIG]}"
    assert verified.signed_at is None


def test_sign_uses_a_fresh_nonce_each_time() -> None:
    assert _signed().headers[NONCE] != _signed().headers[NONCE]


def test_rotation_second_active_token_is_accepted() -> None:
    assert _verify(_signed(), Credentials(secrets=(OTHER, TOKEN))).key_id == key_id(TOKEN)


def test_rotation_comma_listed_signatures() -> None:
    """During a token rotation Plivo sends one signature per token."""
    old, new = _signed(key=OTHER), _signed(key=TOKEN)
    nonce = new.headers[NONCE]
    old_sig = plivo.signature(OTHER, plivo.signed_url(old), nonce)
    both = new.with_(headers={**new.headers, SIG: f"{old_sig},{new.headers[SIG]}"})
    assert _verify(both).key_id == key_id(TOKEN)
    assert _verify(both, Credentials(secrets=(OTHER,))).key_id == key_id(OTHER)


def test_body_order_does_not_matter() -> None:
    signed = _signed()
    reordered = "&".join(reversed(signed.body.decode().split("&"))).encode()
    assert _verify(signed.with_(body=reordered)).key_id == key_id(TOKEN)


def _header(request: InboundRequest, name: str, value: str | None) -> InboundRequest:
    headers = {k: v for k, v in request.headers.items() if k != name}
    if value is not None:
        headers[name] = value
    return request.with_(headers=headers)


SIGNED = _signed()
SIGNED_GET = _signed(GET)


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
        pytest.param(
            SIGNED_GET.with_(url=SIGNED_GET.url.replace("Status=sent", "Status=delivered")),
            CREDS,
            BadSignature,
            id="get-tampered-status",
        ),
        pytest.param(SIGNED.with_(url=URL + "?a=1"), CREDS, BadSignature, id="query-added-to-post"),
        pytest.param(
            SIGNED.with_(url=URL.replace("webhooks", "hooks")), CREDS, BadSignature, id="other-path"
        ),
        pytest.param(_signed(key=OTHER), CREDS, BadSignature, id="wrong-token"),
        pytest.param(_header(SIGNED, NONCE, "1"), CREDS, BadSignature, id="nonce-swapped"),
        pytest.param(_header(SIGNED, SIG, "garbage"), CREDS, BadSignature, id="garbage-signature"),
        pytest.param(_header(SIGNED, SIG, ",,"), CREDS, BadSignature, id="empty-list"),
        pytest.param(_header(SIGNED, SIG, None), CREDS, MissingHeader, id="no-signature"),
        pytest.param(_header(SIGNED, NONCE, None), CREDS, MissingHeader, id="no-nonce"),
        pytest.param(SIGNED, Credentials(), NoCredentials, id="no-credentials"),
        pytest.param(SIGNED.with_(body=b"\xff"), CREDS, MalformedPayload, id="form-not-utf8"),
    ],
)
def test_refused(request_: InboundRequest, creds: Credentials, error: type[IngressError]) -> None:
    with pytest.raises(error):
        _verify(request_, creds)


def test_dev_credentials_sign_and_verify() -> None:
    creds, key = plivo.dev_credentials()
    assert _verify(plivo.sign(POST, key, NOW), creds).key_id == key_id(key)


# -- extract --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "uuid", "status"),
    [
        pytest.param(POST, "db3ce55a-7f1d-11e1-8ea7-1231380bc196", "delivered", id="post"),
        pytest.param(GET, "db3ce55a-7f1d-11e1-8ea7-1231380bc19f", "sent", id="get"),
    ],
)
def test_extract_is_one_record_keyed_by_message_uuid(
    request_: InboundRequest, uuid: str, status: str
) -> None:
    (record,) = plivo.extract(request_)
    assert record.provider_message_id == record.message_key == uuid
    assert record.event_id is None
    assert record.body is None
    assert record.payload["Status"] == status
    assert record.payload["Sequence"] in {"2", "3"}


def test_extract_post_ignores_the_query() -> None:
    (record,) = plivo.extract(POST.with_(url=URL + "?Status=failed"))
    assert record.payload["Status"] == "delivered"


def test_extract_ignores_inbound_messages() -> None:
    body = urlencode([("MessageUUID", "u1"), ("Status", "received"), ("Text", "hi")]).encode()
    assert plivo.extract(POST.with_(body=body)) == []


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        pytest.param(POST.with_(body=b"\xff"), MalformedPayload, id="not-utf8"),
        pytest.param(POST.with_(body=b"a&&b"), MalformedPayload, id="does-not-parse"),
        pytest.param(POST.with_(body=b"Status=sent"), InvalidPayload, id="no-uuid"),
        pytest.param(
            POST.with_(body=b"MessageUUID=+&Status=sent"), InvalidPayload, id="blank-uuid"
        ),
        pytest.param(POST.with_(body=b"MessageUUID=u1"), InvalidPayload, id="no-status"),
        pytest.param(
            POST.with_(body=b"MessageUUID=" + b"u" * 201 + b"&Status=sent"),
            InvalidPayload,
            id="long-uuid",
        ),
        pytest.param(InboundRequest("GET", URL, {}, b""), InvalidPayload, id="get-without-query"),
    ],
)
def test_extract_refuses(request_: InboundRequest, error: type[IngressError]) -> None:
    with pytest.raises(error):
        plivo.extract(request_)
