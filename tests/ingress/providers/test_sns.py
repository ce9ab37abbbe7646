"""SNS verifier and extractor: a self-signed test certificate served by a fake fetch (no
network), one valid signed envelope, then one broken thing per case."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from deploy.tools.samples import load
from ingress.errors import (
    BadSignature,
    IngressError,
    InvalidPayload,
    MalformedPayload,
    MissingHeader,
    NoCredentials,
    StaleTimestamp,
    UpstreamUnavailable,
)
from ingress.providers import sns
from ingress.providers._common import key_id
from ingress.providers._contract import Credentials, InboundRequest, Verified, VerifyContext

NOW = int(time.time())
CERT_PEM, KEY_PEM = sns.self_signed()
OTHER_CERT_PEM, OTHER_KEY_PEM = sns.self_signed()
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem"
TOPIC = "arn:aws:sns:us-east-1:123456789012:sms-delivery-events"
CERT_DER = x509.load_pem_x509_certificate(CERT_PEM.encode()).public_bytes(
    serialization.Encoding.DER
)
ENABLED = Credentials(options={"enabled": "true"})


def _fixture(name: str) -> InboundRequest:
    return next(f for f in load("sns") if f.name == name).request()


NOTIFICATION = _fixture("delivered")
CONFIRMATION = _fixture("subscription_confirmation")


class FakeFetch:
    """Serves one certificate for every URL and remembers what was asked."""

    def __init__(self, pem: str = CERT_PEM, fail: bool = False) -> None:
        self.pem = pem
        self.fail = fail
        self.urls: list[str] = []

    async def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        if self.fail:
            raise OSError("network unreachable")
        return self.pem.encode()


def _verify(
    request: InboundRequest,
    creds: Credentials = ENABLED,
    now: float = NOW,
    fetch: Any = None,
    window: float = 300.0,
) -> Verified:
    context = VerifyContext(now=now, window=window, fetch=fetch or FakeFetch())
    return asyncio.run(sns.verify(request, creds, context))


def _envelope(request: InboundRequest) -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(request.body)
    return parsed


def _signed(
    request: InboundRequest = NOTIFICATION,
    key: str = KEY_PEM,
    now: int = NOW,
    **fields: Any,
) -> InboundRequest:
    """Sign after setting envelope fields (`None` removes one)."""
    envelope = {**_envelope(request), "SigningCertURL": CERT_URL, **fields}
    envelope = {k: v for k, v in envelope.items() if v is not None}
    return sns.sign(request.with_(body=orjson.dumps(envelope)), key, now)


def _after(request: InboundRequest, **fields: Any) -> InboundRequest:
    """Change envelope fields after signing (`None` removes one)."""
    envelope = {**_envelope(request), **fields}
    envelope = {k: v for k, v in envelope.items() if v is not None}
    return request.with_(body=orjson.dumps(envelope))


# -- the signature construction --------------------------------------------------------


def _string_to_sign(envelope: dict[str, Any], keys: tuple[str, ...]) -> bytes:
    """AWS's documented construction, written out independently of the module."""
    return "".join(f"{k}\n{envelope[k]}\n" for k in keys if k in envelope).encode()


@pytest.mark.parametrize(
    ("version", "algorithm"),
    [
        pytest.param("1", hashes.SHA1(), id="v1-sha1"),  # noqa: S303 - SNS SignatureVersion 1
        pytest.param("2", hashes.SHA256(), id="v2"),
    ],
)
def test_signature_is_rsa_over_the_documented_string(
    version: str, algorithm: hashes.HashAlgorithm
) -> None:
    envelope = _envelope(_signed(SignatureVersion=version))
    keys = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
    public_key = x509.load_pem_x509_certificate(CERT_PEM.encode()).public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(
        base64.b64decode(envelope["Signature"]),
        _string_to_sign(envelope, keys),
        padding.PKCS1v15(),
        algorithm,
    )


def test_subject_is_signed_when_present() -> None:
    request = _signed(Subject="SMS event")
    assert _verify(request).key_id == key_id(CERT_DER)
    with pytest.raises(BadSignature):
        _verify(_after(request, Subject="Other subject"))


# -- verify ----------------------------------------------------------------------------


def test_valid_notification_is_accepted() -> None:
    fetch = FakeFetch()
    request = _signed()
    verified = _verify(request, fetch=fetch)
    envelope = _envelope(request)
    assert verified.key_id == key_id(CERT_DER)
    assert verified.replay_key == envelope["MessageId"] == "0b9e1d3c-5a7f-5e2b-9c1d-7a6b5c4d3e21"
    assert verified.signed_at == NOW
    assert verified.confirm_url is None
    assert fetch.urls == [CERT_URL]


def test_signature_version_1_is_accepted() -> None:
    assert _verify(_signed(SignatureVersion="1")).key_id == key_id(CERT_DER)


def test_subscription_confirmation_returns_the_subscribe_url() -> None:
    request = _signed(CONFIRMATION)
    verified = _verify(request)
    assert verified.confirm_url == _envelope(CONFIRMATION)["SubscribeURL"]
    assert verified.replay_key == "165545c9-2a5c-472c-8df2-7ff2be2b3b1b"
    assert sns.extract(request) == []


def test_unsubscribe_confirmation_is_verified_without_confirming() -> None:
    request = _signed(CONFIRMATION, Type="UnsubscribeConfirmation")
    assert _verify(request).confirm_url is None
    assert sns.extract(request) == []


def test_topic_allow_list() -> None:
    creds = Credentials(options={"topic_arns": f"arn:aws:sns:eu-west-1:1:other, {TOPIC}"})
    assert _verify(_signed(), creds).key_id == key_id(CERT_DER)
    with pytest.raises(BadSignature):
        _verify(_signed(TopicArn="arn:aws:sns:us-east-1:123456789012:someone-else"), creds)


def test_retries_within_an_hour_are_accepted_whatever_the_window() -> None:
    assert _verify(_signed(now=NOW - 3600), window=300).signed_at == NOW - 3600
    assert _verify(_signed(now=NOW + 3600), window=300).signed_at == NOW + 3600
    assert _verify(_signed(now=NOW - 7000), window=7200).signed_at == NOW - 7000


def test_pinned_certificate_needs_no_fetch() -> None:
    creds = Credentials(options={"pinned_certs": OTHER_CERT_PEM + CERT_PEM})
    fetch = FakeFetch(fail=True)
    assert _verify(_signed(), creds, fetch=fetch).key_id == key_id(CERT_DER)
    assert fetch.urls == []


def test_dev_credentials_sign_and_verify_without_network() -> None:
    creds, key = sns.dev_credentials()
    assert creds.options["pinned_certs"].startswith("-----BEGIN CERTIFICATE-----")
    context = VerifyContext(now=NOW)  # no fetch at all
    verified = asyncio.run(sns.verify(sns.sign(NOTIFICATION, key, NOW), creds, context))
    assert verified.signed_at == NOW


def test_sign_wraps_a_bare_sms_event_into_a_notification() -> None:
    event = orjson.loads(_envelope(NOTIFICATION)["Message"])
    request = sns.sign(NOTIFICATION.with_(body=orjson.dumps(event)), KEY_PEM, NOW)
    envelope = _envelope(request)
    assert envelope["Type"] == "Notification"
    assert envelope["SigningCertURL"] == sns.DEV_CERT_URL
    assert request.headers["x-amz-sns-message-type"] == "Notification"
    assert _verify(request).key_id == key_id(CERT_DER)


BAD_URLS = [
    "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-abc.pem",
    "https://evil.example/sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://sns.us-east-1.amazonaws.com@evil.example/SimpleNotificationService-abc.pem",
    "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-abc.pem",
    "https://s3.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://sns.us-east-1.amazonaws.com/bucket/SimpleNotificationService-abc.pem",
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem?x=1",
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-../x.pem",
    "https://sns.us-east-1.amazonaws.com/Other-abc.pem",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_foreign_certificate_urls_are_refused_before_any_fetch(url: str) -> None:
    fetch = FakeFetch()
    with pytest.raises(BadSignature):
        _verify(_signed(SigningCertURL=url), fetch=fetch)
    assert fetch.urls == []


def test_china_region_certificate_url_is_accepted() -> None:
    url = "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc123.pem"
    assert _verify(_signed(SigningCertURL=url)).key_id == key_id(CERT_DER)


def _message(**changes: Any) -> str:
    event = orjson.loads(_envelope(NOTIFICATION)["Message"])
    return orjson.dumps({**event, **changes}).decode()


@pytest.mark.parametrize(
    ("request_", "creds", "fetch", "error"),
    [
        pytest.param(
            _after(_signed(), Message=_message(eventType="TEXT_BLOCKED")),
            ENABLED,
            None,
            BadSignature,
            id="tampered-message",
        ),
        pytest.param(
            _after(_signed(), MessageId="x"), ENABLED, None, BadSignature, id="tampered-id"
        ),
        pytest.param(
            _after(_signed(), Timestamp="2030-01-01T00:00:00.000Z"),
            ENABLED,
            None,
            StaleTimestamp,
            id="tampered-timestamp",
        ),
        pytest.param(_signed(key=OTHER_KEY_PEM), ENABLED, None, BadSignature, id="wrong-key"),
        pytest.param(
            _after(_signed(), SignatureVersion="1"), ENABLED, None, BadSignature, id="version-swap"
        ),
        pytest.param(_signed(now=NOW - 3601), ENABLED, None, StaleTimestamp, id="stale"),
        pytest.param(_signed(now=NOW + 3601), ENABLED, None, StaleTimestamp, id="future"),
        pytest.param(
            _after(_signed(), Timestamp="yesterday"), ENABLED, None, StaleTimestamp, id="ts-text"
        ),
        pytest.param(_after(_signed(), Signature=None), ENABLED, None, MissingHeader, id="no-sig"),
        pytest.param(
            _after(_signed(), SigningCertURL=None), ENABLED, None, MissingHeader, id="no-cert-url"
        ),
        pytest.param(
            _after(_signed(), SignatureVersion=None), ENABLED, None, MissingHeader, id="no-version"
        ),
        pytest.param(
            _after(_signed(), SignatureVersion="3"), ENABLED, None, BadSignature, id="version-3"
        ),
        pytest.param(
            _after(_signed(), Signature="%%%"), ENABLED, None, BadSignature, id="sig-not-base64"
        ),
        pytest.param(
            _after(_signed(), TopicArn=None), ENABLED, None, InvalidPayload, id="no-topic"
        ),
        pytest.param(_signed(), Credentials(), None, NoCredentials, id="no-credentials"),
        pytest.param(
            _signed(),
            Credentials(secrets=("x",), options={"enabled": "no"}),
            None,
            NoCredentials,
            id="not-enabled",
        ),
        pytest.param(
            _signed(),
            Credentials(options={"pinned_certs": "not a pem"}),
            None,
            NoCredentials,
            id="pinned-garbage",
        ),
        pytest.param(
            _signed(),
            Credentials(options={"pinned_certs": OTHER_CERT_PEM}),
            None,
            BadSignature,
            id="pinned-other-cert",
        ),
        pytest.param(
            _signed(), ENABLED, FakeFetch(fail=True), UpstreamUnavailable, id="fetch-fails"
        ),
        pytest.param(_signed(), ENABLED, FakeFetch("junk"), BadSignature, id="fetched-junk"),
        pytest.param(
            _signed(), ENABLED, FakeFetch(OTHER_CERT_PEM), BadSignature, id="fetched-other-cert"
        ),
        pytest.param(
            _signed(CONFIRMATION, SubscribeURL="https://evil.example/confirm"),
            ENABLED,
            None,
            InvalidPayload,
            id="foreign-subscribe-url",
        ),
        pytest.param(
            NOTIFICATION.with_(body=b"{"), ENABLED, None, MalformedPayload, id="malformed"
        ),
        pytest.param(
            _after(_signed(), Type="Something"), ENABLED, None, InvalidPayload, id="unknown-type"
        ),
        pytest.param(  # found by tests/ingress/test_fuzz.py: a list is unhashable (was a 500)
            _after(_signed(), Type=[]), ENABLED, None, InvalidPayload, id="type-is-a-list"
        ),
    ],
)
def test_refused(
    request_: InboundRequest, creds: Credentials, fetch: Any, error: type[IngressError]
) -> None:
    with pytest.raises(error):
        _verify(request_, creds, fetch=fetch)


def test_without_fetch_or_pinned_certificate_nothing_verifies() -> None:
    context = VerifyContext(now=NOW)
    with pytest.raises(BadSignature):
        asyncio.run(sns.verify(_signed(), ENABLED, context))


def test_expired_certificate_is_refused() -> None:
    later = NOW + 11 * 365 * 24 * 3600  # the test certificate is valid for 10 years
    with pytest.raises(BadSignature):
        _verify(_signed(now=later), now=later)


# -- extract ---------------------------------------------------------------------------


def test_extract_notification_keyed_by_aws_message_id() -> None:
    request = _signed()
    (record,) = sns.extract(request)
    assert record.provider_message_id == "9539975a-e71f-45f3-b496-8d98dc098a77"
    assert record.message_key == "9539975a-e71f-45f3-b496-8d98dc098a77"
    assert record.event_id == "0b9e1d3c-5a7f-5e2b-9c1d-7a6b5c4d3e21"
    assert record.body is None
    assert record.payload["eventType"] == "TEXT_DELIVERED"
    assert record.payload["carrierName"] == "T-mobile USA Inc."
    assert record.payload["topicArn"] == TOPIC


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        pytest.param(_after(NOTIFICATION, Message="plain text"), MalformedPayload, id="not-json"),
        pytest.param(_after(NOTIFICATION, Message="[1]"), MalformedPayload, id="not-object"),
        pytest.param(_after(NOTIFICATION, Message=None), InvalidPayload, id="no-message"),
        pytest.param(_after(NOTIFICATION, MessageId=None), InvalidPayload, id="no-sns-id"),
        pytest.param(
            _after(NOTIFICATION, Message=_message(messageId=None)), InvalidPayload, id="no-id"
        ),
        pytest.param(
            _after(NOTIFICATION, Message=_message(eventType=None)), InvalidPayload, id="no-type"
        ),
        pytest.param(NOTIFICATION.with_(body=b"[]"), MalformedPayload, id="envelope-not-object"),
    ],
)
def test_extract_refused(request_: InboundRequest, error: type[IngressError]) -> None:
    with pytest.raises(error):
        sns.extract(request_)
