"""Sinch verifier and extractor: one valid signed request, then one broken thing per case."""

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
from ingress.providers import sinch
from ingress.providers._common import key_id
from ingress.providers._contract import Credentials, InboundRequest, Verified, VerifyContext

NOW = 1_718_000_000
URL = "https://dlr.example.com/webhooks/sinch"
SECRET = "sinch-test-secret"
OTHER = "another-secret"
CREDS = Credentials(secrets=(SECRET,))

#: Published vector: sinch-sdk-python, tests/unit/domains/conversation/v1/sinch_events.
VECTOR_SECRET = "foo_secret1234"
VECTOR_BODY = (
    b'{"app_id":"01EB37HMH1M6SV18BSNS3G135H","accepted_time":"2020-11-17T15:09:11.659Z",'
    b'"project_id":"c36f3d3d-1513-2edd-ae42-11995557ff61","message_delivery_report":'
    b'{"message_id":"01EQBC1A3BEK731GY4YXEN0C2R","conversation_id":"01EPYATA64TMNZ1FV02JKF12JF",'
    b'"status":"QUEUED_ON_CHANNEL","contact_id":"01EXA07N79THJ20WSN6AS30TMW"}}'
)
VECTOR_NONCE = "01FJA8B4A7BM43YGWSG9GBV067"
VECTOR_TIMESTAMP = "1634579353"
VECTOR_SIGNATURE = "Yc+3R1pIS78xLASybulhs8BsSo9BPB3Pr92QCUoczfk="


def _fixture(name: str) -> bytes:
    return next(f for f in load("sinch") if f.name == name).body


BODY = _fixture("delivered")


def _request(body: bytes = BODY, headers: dict[str, str] | None = None) -> InboundRequest:
    return InboundRequest(
        method="POST",
        url=URL,
        headers={"content-type": "application/json", **(headers or {})},
        body=body,
    )


def _verify(request: InboundRequest, creds: Credentials = CREDS, now: float = NOW) -> Verified:
    return asyncio.run(sinch.verify(request, creds, VerifyContext(now=now)))


def _signed(body: bytes = BODY, key: str = SECRET, now: int = NOW) -> InboundRequest:
    return sinch.sign(_request(body), key, now)


def _vector_request() -> InboundRequest:
    return _request(
        VECTOR_BODY,
        {
            "x-sinch-webhook-signature": VECTOR_SIGNATURE,
            "x-sinch-webhook-signature-nonce": VECTOR_NONCE,
            "x-sinch-webhook-signature-timestamp": VECTOR_TIMESTAMP,
        },
    )


def test_known_answer_vector_verifies() -> None:
    verified = _verify(
        _vector_request(), Credentials(secrets=(VECTOR_SECRET,)), now=float(VECTOR_TIMESTAMP)
    )
    assert verified == Verified(
        key_id=key_id(VECTOR_SECRET), replay_key=VECTOR_SIGNATURE, signed_at=1634579353.0
    )


def test_known_answer_vector_is_stale_today() -> None:
    """The SDK never checks the age; we do, so the 2021 vector is refused at a later now."""
    with pytest.raises(StaleTimestamp):
        _verify(_vector_request(), Credentials(secrets=(VECTOR_SECRET,)), now=NOW)


def test_known_answer_vector_with_wrong_secret_is_refused() -> None:
    with pytest.raises(BadSignature):
        _verify(_vector_request(), Credentials(secrets=("foo_secret1235",)), now=1634579353)


def test_valid_request_is_accepted() -> None:
    signed = _signed()
    verified = _verify(signed)
    assert verified.key_id == key_id(SECRET)
    assert verified.replay_key == signed.headers["x-sinch-webhook-signature"]
    assert verified.signed_at == NOW


def test_sign_uses_a_fresh_nonce_each_time() -> None:
    first, second = _signed(), _signed()
    nonce = "x-sinch-webhook-signature-nonce"
    assert first.headers[nonce] != second.headers[nonce]


def test_rotation_second_active_secret_is_accepted() -> None:
    verified = _verify(_signed(), Credentials(secrets=(OTHER, SECRET)))
    assert verified.key_id == key_id(SECRET)


def _drop(name: str) -> InboundRequest:
    signed = _signed()
    return signed.with_(headers={k: v for k, v in signed.headers.items() if k != name})


def _set(name: str, value: str) -> InboundRequest:
    signed = _signed()
    return signed.with_(headers={**signed.headers, name: value})


@pytest.mark.parametrize(
    ("request_", "creds", "error"),
    [
        pytest.param(_signed().with_(body=BODY + b"\n"), CREDS, BadSignature, id="tampered-body"),
        pytest.param(
            _signed().with_(body=BODY.replace(b"Delivered", b"Failed")),
            CREDS,
            BadSignature,
            id="tampered-status",
        ),
        pytest.param(_signed(key=OTHER), CREDS, BadSignature, id="wrong-secret"),
        pytest.param(
            _set("x-sinch-webhook-signature-nonce", "other-nonce"),
            CREDS,
            BadSignature,
            id="nonce-swapped",
        ),
        pytest.param(
            _set("x-sinch-webhook-signature-timestamp", str(NOW + 1)),
            CREDS,
            BadSignature,
            id="timestamp-swapped",
        ),
        pytest.param(
            _set("x-sinch-webhook-signature", "not-a-signature"),
            CREDS,
            BadSignature,
            id="garbage-signature",
        ),
        pytest.param(_signed(now=NOW - 301), CREDS, StaleTimestamp, id="stale-timestamp"),
        pytest.param(_signed(now=NOW + 301), CREDS, StaleTimestamp, id="future-timestamp"),
        pytest.param(
            _set("x-sinch-webhook-signature-timestamp", "soon"),
            CREDS,
            StaleTimestamp,
            id="timestamp-not-int",
        ),
        pytest.param(_drop("x-sinch-webhook-signature"), CREDS, MissingHeader, id="no-signature"),
        pytest.param(_drop("x-sinch-webhook-signature-nonce"), CREDS, MissingHeader, id="no-nonce"),
        pytest.param(
            _drop("x-sinch-webhook-signature-timestamp"), CREDS, MissingHeader, id="no-timestamp"
        ),
        pytest.param(_signed(), Credentials(), NoCredentials, id="no-credentials"),
        pytest.param(
            _signed(), Credentials(basic=(("u", "p"),)), NoCredentials, id="basic-only-credentials"
        ),
    ],
)
def test_refused(request_: InboundRequest, creds: Credentials, error: type[IngressError]) -> None:
    with pytest.raises(error):
        _verify(request_, creds)


def test_dev_credentials_sign_and_verify() -> None:
    creds, key = sinch.dev_credentials()
    verified = _verify(sinch.sign(_request(), key, NOW), creds)
    assert verified.key_id == key_id(key)


# -- extract -------------------------------------------------------------------------


def test_extract_recipient_report_is_one_record() -> None:
    (record,) = sinch.extract(_request(BODY))
    assert record.provider_message_id == "01W4FFL35P4NC4K35SMSBATCH9"
    assert record.message_key == "01W4FFL35P4NC4K35SMSBATCH9:12017777777"
    assert record.event_id is None
    assert record.body is None
    assert record.payload == orjson.loads(BODY)


def test_extract_batch_report_splits_per_recipient() -> None:
    records = sinch.extract(_request(_fixture("batch")))
    batch = "01W4FFL35P4NC4K35SMSBATCH8"
    assert [r.message_key for r in records] == [
        f"{batch}:12017777777",
        f"{batch}:33612345678",
        f"{batch}:12010000000",
    ]
    assert {r.provider_message_id for r in records} == {batch}
    assert [r.payload["status"] for r in records] == ["Delivered", "Delivered", "Failed"]
    assert [r.payload["code"] for r in records] == [0, 0, 402]
    for record in records:
        assert record.body is not None
        assert orjson.loads(record.body) == dict(record.payload)
        assert record.payload["client_reference"] == "client-ref"


def test_extract_summary_batch_report_has_no_recipients_to_key() -> None:
    body = orjson.dumps(
        {
            "type": "delivery_report_sms",
            "batch_id": "B1",
            "statuses": [{"code": 0, "count": 2, "status": "Delivered"}],
            "total_message_count": 2,
        }
    )
    assert sinch.extract(_request(body)) == []


def test_extract_mms_recipient_report() -> None:
    body = orjson.dumps(
        {
            "type": "recipient_delivery_report_mms",
            "batch_id": "B2",
            "recipient": "46700000000",
            "code": 0,
            "status": "Delivered",
        }
    )
    (record,) = sinch.extract(_request(body))
    assert record.message_key == "B2:46700000000"


def test_extract_reads_inbound_text_messages_only() -> None:
    body = orjson.dumps({"type": "mo_text", "id": "x", "from": "1", "to": "2", "body": "hi"})
    (record,) = sinch.extract(_request(body))
    assert record.inbound is not None and record.payload == {}
    assert (record.inbound.number, record.inbound.to, record.inbound.text) == ("1", "2", "hi")
    binary = orjson.dumps({"type": "mo_binary", "id": "y", "from": "1", "to": "2", "body": "AA=="})
    assert sinch.extract(_request(binary)) == []


def _report(**fields: object) -> bytes:
    base: dict[str, object] = {
        "type": "recipient_delivery_report_sms",
        "batch_id": "B",
        "recipient": "1",
        "code": 0,
        "status": "Delivered",
    }
    base.update(fields)
    return orjson.dumps({k: v for k, v in base.items() if v is not None})


def _batch(statuses: object) -> bytes:
    return orjson.dumps({"type": "delivery_report_sms", "batch_id": "B", "statuses": statuses})


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param(b"{oops", MalformedPayload, id="not-json"),
        pytest.param(b"\xff", MalformedPayload, id="not-utf8"),
        pytest.param(b'"text"', MalformedPayload, id="not-object"),
        pytest.param(b"{}", InvalidPayload, id="no-type"),
        pytest.param(b'{"type":"something_else"}', InvalidPayload, id="unknown-type"),
        pytest.param(_report(batch_id=""), InvalidPayload, id="empty-batch-id"),
        pytest.param(_report(recipient=None), InvalidPayload, id="no-recipient"),
        pytest.param(_report(status=None), InvalidPayload, id="no-status"),
        pytest.param(_report(batch_id="B" * 201), InvalidPayload, id="long-batch-id"),
        pytest.param(_batch("x"), InvalidPayload, id="statuses-not-list"),
        pytest.param(_batch(["x"]), InvalidPayload, id="status-entry-not-object"),
        pytest.param(_batch([{"recipients": ["1"]}]), InvalidPayload, id="batch-no-status"),
        pytest.param(
            _batch([{"status": "Delivered", "recipients": "1"}]),
            InvalidPayload,
            id="recipients-not-list",
        ),
        pytest.param(
            _batch([{"status": "Delivered", "recipients": [1]}]),
            InvalidPayload,
            id="recipient-not-string",
        ),
    ],
)
def test_extract_refuses(body: bytes, error: type[IngressError]) -> None:
    with pytest.raises(error):
        sinch.extract(_request(body))
