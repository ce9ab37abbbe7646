"""Bandwidth Basic-auth verifier and array extractor: one valid request, one broken thing per
case."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json

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
from ingress.providers import bandwidth
from ingress.providers._common import key_id
from ingress.providers._contract import Credentials, InboundRequest, Verified, VerifyContext

NOW = 1_700_000_000
USER, PASSWORD = "bw-callbacks", "s3cret-Callback-Password"
KEY = f"{USER}:{PASSWORD}"
CREDS = Credentials(basic=((USER, PASSWORD),))


def _fixture(name: str) -> InboundRequest:
    return next(f for f in load("bandwidth") if f.name == name).request()


DELIVERED = _fixture("delivered")
GROUP = _fixture("rejected")
BATCH = _fixture("batch")


def _verify(request: InboundRequest, creds: Credentials = CREDS) -> Verified:
    return asyncio.run(bandwidth.verify(request, creds, VerifyContext(now=NOW)))


def _signed(request: InboundRequest = DELIVERED, key: str = KEY) -> InboundRequest:
    return bandwidth.sign(request, key, NOW)


def _auth(value: str) -> InboundRequest:
    return DELIVERED.with_(headers={**DELIVERED.headers, "authorization": value})


def test_sign_sends_the_documented_basic_header() -> None:
    header = _signed().headers["authorization"]
    assert header == "Basic " + base64.b64encode(b"bw-callbacks:s3cret-Callback-Password").decode()


def test_valid_request_is_accepted_with_body_hash_as_replay_key() -> None:
    verified = _verify(_signed())
    assert verified == Verified(
        key_id=key_id(KEY),
        replay_key="sha256:" + hashlib.sha256(DELIVERED.body).hexdigest(),
    )


def test_replay_key_differs_per_callback_not_per_credential() -> None:
    assert _verify(_signed(DELIVERED)).replay_key != _verify(_signed(GROUP)).replay_key


def test_rotation_second_pair_is_accepted() -> None:
    creds = Credentials(basic=(("old-user", "old-password"), (USER, PASSWORD)))
    assert _verify(_signed(), creds).key_id == key_id(KEY)


def test_password_containing_colon() -> None:
    creds = Credentials(basic=((USER, "pa:ss"),))
    assert _verify(_signed(key=f"{USER}:pa:ss"), creds).key_id == key_id(f"{USER}:pa:ss")


@pytest.mark.parametrize(
    ("request_", "creds", "error"),
    [
        pytest.param(_signed(key=f"{USER}:wrong"), CREDS, BadSignature, id="wrong-password"),
        pytest.param(_signed(key=f"other:{PASSWORD}"), CREDS, BadSignature, id="wrong-user"),
        pytest.param(_signed(key=f"{USER}:{PASSWORD}x"), CREDS, BadSignature, id="password-suffix"),
        pytest.param(DELIVERED, CREDS, MissingHeader, id="no-authorization"),
        pytest.param(_auth("Bearer abc"), CREDS, BadSignature, id="not-basic"),
        pytest.param(_auth("Basic %%%"), CREDS, BadSignature, id="not-base64"),
        pytest.param(
            _auth("Basic " + base64.b64encode(b"no-colon").decode()),
            CREDS,
            BadSignature,
            id="no-colon",
        ),
        pytest.param(_signed(), Credentials(), NoCredentials, id="no-credentials"),
        pytest.param(_signed(), Credentials(secrets=(KEY,)), NoCredentials, id="secret-not-basic"),
    ],
)
def test_refused(request_: InboundRequest, creds: Credentials, error: type[IngressError]) -> None:
    with pytest.raises(error):
        _verify(request_, creds)


def test_dev_credentials_sign_and_verify() -> None:
    creds, key = bandwidth.dev_credentials()
    assert creds.basic and not creds.secrets
    assert _verify(bandwidth.sign(DELIVERED, key, NOW), creds).key_id == key_id(key)


# -- extract -------------------------------------------------------------------------


def test_extract_single_recipient_keyed_by_message_id() -> None:
    (record,) = bandwidth.extract(DELIVERED)
    item = orjson.loads(DELIVERED.body)[0]
    assert record.provider_message_id == "14762070468292kw2fuqty55yp2b2"
    assert record.message_key == "14762070468292kw2fuqty55yp2b2"
    assert record.event_id is None
    assert record.body == orjson.dumps(item)
    assert record.payload["type"] == "message-delivered"
    assert record.payload["to"] == "+12345678902"
    assert record.payload["segment_count"] == 1


def test_extract_group_message_keyed_by_recipient() -> None:
    (record,) = bandwidth.extract(GROUP)
    assert record.message_key == "14762070468292kw2fuqty55yp2b2:+52345678903"
    assert record.payload["error_code"] == "4432"
    assert record.payload["recipients"] == 2


def test_extract_splits_a_batch_into_one_record_per_element() -> None:
    items = orjson.loads(BATCH.body)
    records = bandwidth.extract(BATCH)
    assert [r.message_key for r in records] == [
        "1710000000008abcdefghijklmn:+19195550121",
        "1710000000008abcdefghijklmn:+19195550122",
        "1710000000009abcdefghijklmn",
    ]
    assert [r.body for r in records] == [orjson.dumps(item) for item in items]


def test_extract_reads_inbound_messages_apart_from_receipts() -> None:
    inbound = {
        "type": "message-received",
        "to": "+19195550100",
        "message": {"id": "in-1", "direction": "in", "to": ["+19195550100"], "from": "+1",
                    "text": "STOP"},
    }  # fmt: skip
    body = json.dumps([inbound, orjson.loads(DELIVERED.body)[0]]).encode()
    records = bandwidth.extract(DELIVERED.with_(body=body))
    receipts = [r.message_key for r in records if r.inbound is None]
    assert receipts == ["14762070468292kw2fuqty55yp2b2"]
    (message,) = [r for r in records if r.inbound is not None]
    assert (message.message_key, message.payload) == ("in-1", {})
    assert message.inbound is not None
    assert (message.inbound.number, message.inbound.to, message.inbound.text) == (
        "+1",
        "+19195550100",
        "STOP",
    )


def _items(*items: object) -> InboundRequest:
    return DELIVERED.with_(body=json.dumps(list(items)).encode())


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        pytest.param(DELIVERED.with_(body=b"[{"), MalformedPayload, id="malformed"),
        pytest.param(DELIVERED.with_(body=b'{"type": "x"}'), MalformedPayload, id="not-an-array"),
        pytest.param(_items(), InvalidPayload, id="empty-array"),
        pytest.param(_items("x"), InvalidPayload, id="element-not-object"),
        pytest.param(_items({"message": {"id": "a"}}), InvalidPayload, id="no-type"),
        pytest.param(_items({"type": "message-delivered"}), InvalidPayload, id="no-message"),
        pytest.param(
            _items({"type": "message-delivered", "message": {}}), InvalidPayload, id="no-id"
        ),
        pytest.param(
            _items({"type": "message-failed", "message": {"id": "g", "to": ["+1", "+2"]}}),
            InvalidPayload,
            id="group-without-to",
        ),
    ],
)
def test_extract_refused(request_: InboundRequest, error: type[IngressError]) -> None:
    with pytest.raises(error):
        bandwidth.extract(request_)
