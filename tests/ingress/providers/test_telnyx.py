"""Telnyx verifier and extractor: one valid signed request, then one broken thing per case."""

from __future__ import annotations

import asyncio
import base64

import orjson
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
from ingress.providers import telnyx
from ingress.providers._common import key_id
from ingress.providers._contract import Credentials, InboundRequest, Verified, VerifyContext

NOW = 1_700_000_000
URL = "https://dlr.example.com/webhooks/telnyx"

#: A self-computed Ed25519 vector (Telnyx publishes none).
VECTOR_SEED = bytes.fromhex("b2f3712c18e4c0728b129e1ab5f923b8bf5b65da7baebe207ba74169ab1477ad")
VECTOR_PUBLIC = "mBha1BfkFO3pomh9biwRPgzedd92zVerUPWDMsKHbHw="
VECTOR_BODY = b'{"data":{"event_type":"message.finalized","id":"evt_1"}}'
VECTOR_SIGNATURE = (
    "Ouhlicy6S7kGgA8Iz/7B3W4laXPkJE3O8dnlSN2+7rVPtXXBAIFWTjNfkCtD7rC5zSMffJtwZA3wlfI12u+eAw=="
)
VECTOR_KEY = base64.b64encode(VECTOR_SEED).decode()


def _fixture(name: str) -> bytes:
    return next(f for f in load("telnyx") if f.name == name).body


BODY = _fixture("carrier_filtered")


def _request(body: bytes = BODY) -> InboundRequest:
    return InboundRequest(
        method="POST", url=URL, headers={"content-type": "application/json"}, body=body
    )


def _keypair() -> tuple[str, str]:
    signing = SigningKey.generate()
    return (
        base64.b64encode(bytes(signing.verify_key)).decode(),
        base64.b64encode(bytes(signing)).decode(),
    )


PUBLIC, PRIVATE = _keypair()
OTHER_PUBLIC, OTHER_PRIVATE = _keypair()
CREDS = Credentials(public_keys=(PUBLIC,))


def _verify(request: InboundRequest, creds: Credentials = CREDS, now: float = NOW) -> Verified:
    return asyncio.run(telnyx.verify(request, creds, VerifyContext(now=now)))


def _signed(body: bytes = BODY, key: str = PRIVATE, now: int = NOW) -> InboundRequest:
    return telnyx.sign(_request(body), key, now)


def test_known_answer_vector_signs_byte_for_byte() -> None:
    signed = telnyx.sign(_request(VECTOR_BODY), VECTOR_KEY, 1_700_000_000)
    assert signed.headers["telnyx-timestamp"] == "1700000000"
    assert signed.headers["telnyx-signature-ed25519"] == VECTOR_SIGNATURE
    assert base64.b64encode(bytes(SigningKey(VECTOR_SEED).verify_key)).decode() == VECTOR_PUBLIC


def test_known_answer_vector_verifies() -> None:
    request = _request(VECTOR_BODY).with_(
        headers={
            "content-type": "application/json",
            "telnyx-timestamp": "1700000000",
            "telnyx-signature-ed25519": VECTOR_SIGNATURE,
        }
    )
    verified = _verify(request, Credentials(public_keys=(VECTOR_PUBLIC,)), now=1_700_000_100)
    assert verified == Verified(
        key_id=key_id(VECTOR_PUBLIC), replay_key="evt_1", signed_at=1_700_000_000.0
    )


def test_valid_request_is_accepted_with_event_id_as_replay_key() -> None:
    result = _verify(_signed())
    assert result.key_id == key_id(PUBLIC)
    assert result.replay_key == orjson.loads(BODY)["data"]["id"]
    assert result.signed_at == NOW


def test_rotation_second_active_key_is_accepted() -> None:
    creds = Credentials(public_keys=(OTHER_PUBLIC, PUBLIC))
    result = _verify(_signed(), creds)
    assert result.key_id == key_id(PUBLIC)


def test_misconfigured_key_is_skipped_not_raised() -> None:
    creds = Credentials(public_keys=("not base64!", base64.b64encode(b"short").decode(), PUBLIC))
    result = _verify(_signed(), creds)
    assert result.key_id == key_id(PUBLIC)


def test_replay_key_falls_back_to_signature_without_event_id() -> None:
    request = _signed(b'{"data":{"payload":{}}}')
    result = _verify(request)
    assert result.replay_key == request.headers["telnyx-signature-ed25519"]


def _drop(name: str) -> InboundRequest:
    signed = _signed()
    return signed.with_(headers={k: v for k, v in signed.headers.items() if k != name})


def _set(name: str, value: str) -> InboundRequest:
    signed = _signed()
    return signed.with_(headers={**signed.headers, name: value})


@pytest.mark.parametrize(
    ("request_", "creds", "error"),
    [
        pytest.param(_signed().with_(body=BODY + b" "), CREDS, BadSignature, id="tampered-body"),
        pytest.param(
            _signed().with_(body=BODY.replace(b"40002", b"40003")),
            CREDS,
            BadSignature,
            id="tampered-error-code",
        ),
        pytest.param(_signed(key=OTHER_PRIVATE), CREDS, BadSignature, id="wrong-key"),
        pytest.param(_set("telnyx-timestamp", str(NOW + 1)), CREDS, BadSignature, id="ts-swapped"),
        pytest.param(_signed(now=NOW - 301), CREDS, StaleTimestamp, id="stale-timestamp"),
        pytest.param(_signed(now=NOW + 301), CREDS, StaleTimestamp, id="future-timestamp"),
        pytest.param(_set("telnyx-timestamp", "yesterday"), CREDS, StaleTimestamp, id="ts-not-int"),
        pytest.param(_drop("telnyx-signature-ed25519"), CREDS, MissingHeader, id="no-signature"),
        pytest.param(_drop("telnyx-timestamp"), CREDS, MissingHeader, id="no-timestamp"),
        pytest.param(
            _set("telnyx-signature-ed25519", "%%%"), CREDS, BadSignature, id="sig-not-base64"
        ),
        pytest.param(
            _set("telnyx-signature-ed25519", base64.b64encode(b"x" * 63).decode()),
            CREDS,
            BadSignature,
            id="sig-wrong-length",
        ),
        pytest.param(_signed(), Credentials(), NoCredentials, id="no-credentials"),
        pytest.param(
            _signed(), Credentials(secrets=("hmac-only",)), NoCredentials, id="secret-not-key"
        ),
    ],
)
def test_refused(request_: InboundRequest, creds: Credentials, error: type[IngressError]) -> None:
    with pytest.raises(error):
        _verify(request_, creds)


def test_window_edges_are_inclusive() -> None:
    assert _verify(_signed(now=NOW - 300)).signed_at == NOW - 300
    assert _verify(_signed(now=NOW + 300)).signed_at == NOW + 300


def test_sign_rejects_a_key_that_is_not_a_seed() -> None:
    with pytest.raises(ValueError):
        telnyx.sign(_request(), "c2hvcnQ=", NOW)


def test_dev_credentials_sign_and_verify() -> None:
    creds, key = telnyx.dev_credentials()
    assert creds.public_keys and not creds.secrets
    result = _verify(telnyx.sign(_request(), key, NOW), creds)
    assert result.key_id == key_id(creds.public_keys[0])


# -- extract -------------------------------------------------------------------------


def test_extract_single_recipient_keyed_by_message_id() -> None:
    (record,) = telnyx.extract(_request(_fixture("delivered")))
    assert record.provider_message_id == "40385f64-5717-4562-b3fc-2c963f66afa6"
    assert record.message_key == "40385f64-5717-4562-b3fc-2c963f66afa6"
    assert record.event_id == "4ee8c3a6-4995-4309-a3c6-38e3db9ea4be"
    assert record.body is None
    assert record.payload["to"] == "+18665550001"
    assert record.payload["status"] == "delivered"
    assert record.payload["cost_amount"] == "0.0051"
    assert "text" not in record.payload


def test_extract_splits_group_messages_per_recipient() -> None:
    body = _fixture("group")
    records = telnyx.extract(_request(body))
    message_id = "40385f64-5717-4562-b3fc-2c963f66afc0"
    assert [r.message_key for r in records] == [
        f"{message_id}:+18665550001",
        f"{message_id}:+18665550002",
    ]
    assert {r.provider_message_id for r in records} == {message_id}
    assert {r.event_id for r in records} == {"4ee8c3a6-4995-4309-a3c6-38e3db9ea4c0"}
    assert [r.payload["status"] for r in records] == ["delivered", "delivery_failed"]
    assert all(r.payload["recipients"] == 2 for r in records)


def test_extract_ignores_inbound_messages() -> None:
    body = orjson.dumps(
        {
            "data": {
                "event_type": "message.received",
                "id": "evt",
                "payload": {"id": "m1", "direction": "inbound", "to": [{"status": "webhook"}]},
            }
        }
    )
    assert telnyx.extract(_request(body)) == []


def _event(payload: object) -> bytes:
    return orjson.dumps({"data": {"event_type": "message.sent", "id": "e", "payload": payload}})


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param(b"{not json", MalformedPayload, id="not-json"),
        pytest.param(b"\xff\xfe", MalformedPayload, id="not-utf8"),
        pytest.param(b"[]", MalformedPayload, id="not-object"),
        pytest.param(b"{}", InvalidPayload, id="no-data"),
        pytest.param(b'{"data":{"id":"e"}}', InvalidPayload, id="no-payload"),
        pytest.param(_event({"to": [{"status": "sent"}]}), InvalidPayload, id="no-message-id"),
        pytest.param(_event({"id": "m", "to": []}), InvalidPayload, id="empty-to"),
        pytest.param(_event({"id": "m", "to": "x"}), InvalidPayload, id="to-not-list"),
        pytest.param(_event({"id": "m", "to": [{}]}), InvalidPayload, id="no-status"),
        pytest.param(_event({"id": "m", "to": ["x"]}), InvalidPayload, id="to-entry-not-object"),
        pytest.param(
            _event({"id": "m", "to": [{"status": "sent"}, {"status": "sent"}]}),
            InvalidPayload,
            id="group-without-phone",
        ),
        pytest.param(_event({"id": "m" * 201, "to": [{"status": "s"}]}), InvalidPayload, id="long"),
    ],
)
def test_extract_refuses(body: bytes, error: type[IngressError]) -> None:
    with pytest.raises(error):
        telnyx.extract(_request(body))
