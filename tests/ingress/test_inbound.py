"""Inbound STOP / START / HELP per provider, from realistic payloads, through the HTTP app.

Each provider's inbound-message webhook, signed with its `sign()` and the development key
the app created, goes through the real ingress app up to the producer (an in-process
double: what a keyword becomes on the real broker and in the worker is
tests/integration/test_privacy_pipeline.py). A keyword is produced once, keyed by the
hash of the person's E.164 number, with only the keyword in its payload; a conversation
is acknowledged and produced nowhere.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from starlette.testclient import TestClient

from deploy.settings import Settings
from ingress.app import create_app
from ingress.providers import PROVIDERS
from ingress.providers._contract import InboundRequest
from schemas.envelope import INBOUND_KEY_PREFIX
from schemas.phone import number_hash
from tests.doubles import RecordingProducer

BASE_URL = "http://testserver"
SALT = "inbound-test-salt"
FORM = "application/x-www-form-urlencoded"


def _form(provider: str, params: list[tuple[str, str]], query: str = "") -> InboundRequest:
    url = f"{BASE_URL}/webhooks/{provider}" + (f"?{query}" if query else "")
    return InboundRequest("POST", url, {"content-type": FORM}, urlencode(params).encode())


def _json(provider: str, document: Any) -> InboundRequest:
    url = f"{BASE_URL}/webhooks/{provider}"
    return InboundRequest("POST", url, {"content-type": "application/json"}, orjson.dumps(document))


def twilio(text: str, sid: str, hint: str | None = None) -> InboundRequest:
    """Twilio's incoming-message webhook (Advanced Opt-Out adds OptOutType)."""
    params = [
        ("ToCountry", "US"), ("ToState", "CA"), ("SmsMessageSid", sid), ("NumMedia", "0"),
        ("ToCity", "SAN FRANCISCO"), ("FromZip", "94105"), ("SmsSid", sid),
        ("FromState", "CA"), ("SmsStatus", "received"), ("FromCity", "SAN FRANCISCO"),
        ("Body", text), ("FromCountry", "US"), ("To", "+15017122661"), ("ToZip", "94105"),
        ("NumSegments", "1"), ("MessageSid", sid), ("AccountSid", "AC" + "x" * 32),
        ("From", "+14155550100"), ("ApiVersion", "2010-04-01"),
    ]  # fmt: skip
    if hint:
        params.append(("OptOutType", hint))
    return _form("twilio", params)


def telnyx(text: str, sid: str) -> InboundRequest:
    return _json(
        "telnyx",
        {
            "data": {
                "event_type": "message.received",
                "id": f"evt-{sid}",
                "occurred_at": "2025-08-12T10:15:00.000+00:00",
                "record_type": "event",
                "payload": {
                    "direction": "inbound",
                    "from": {"carrier": "T-Mobile USA", "line_type": "Wireless",
                             "phone_number": "+1 (415) 555-0100"},
                    "id": sid,
                    "messaging_profile_id": "740572b6-099c-44a1-89b9-6c92163bc68d",
                    "received_at": "2025-08-12T10:15:00.000+00:00",
                    "text": text,
                    "to": [{"carrier": "Telnyx", "line_type": "Wireless",
                            "phone_number": "+17735550002", "status": "webhook_delivered"}],
                    "type": "SMS",
                },
            },
            "meta": {"attempt": 1, "delivered_to": "https://example.com/webhooks"},
        },
    )  # fmt: skip


def vonage(text: str, sid: str) -> InboundRequest:
    """Vonage's inbound-SMS webhook (SMS API), numbers without '+'."""
    params = [
        ("msisdn", "14155550100"), ("to", "12065550123"), ("messageId", sid), ("text", text),
        ("type", "text"), ("keyword", text.split()[0].upper() if text.split() else ""),
        ("api-key", "abcd1234"), ("message-timestamp", "2025-08-12 10:15:00"),
    ]  # fmt: skip
    return _form("vonage", params)


def plivo(text: str, sid: str) -> InboundRequest:
    """Plivo's Message URL of a number receiving an SMS."""
    params = [
        ("From", "14155550100"), ("To", "12065550123"), ("Type", "sms"), ("Text", text),
        ("MessageUUID", sid), ("Units", "1"), ("TotalRate", "0.0000"),
        ("TotalAmount", "0.0000"), ("MessageIntent", ""),
    ]  # fmt: skip
    return _form("plivo", params)


def bird(text: str, sid: str) -> InboundRequest:
    """A Bird Channels `sms.inbound` event."""
    return _json(
        "bird",
        {
            "service": "channels",
            "event": "sms.inbound",
            "payload": {
                "id": sid,
                "channelId": "5b1e2f3a-0000-4000-8000-000000000001",
                "sender": {"contact": {"id": "c-1", "identifierKey": "phonenumber",
                                       "identifierValue": "+14155550100"}},
                "receiver": {"connector": {"id": "k-1", "identifierValue": "+12065550123"}},
                "body": {"type": "text", "text": {"text": text}},
                "direction": "incoming",
                "status": "delivered",
                "createdAt": "2025-08-12T10:15:00.000Z",
                "updatedAt": "2025-08-12T10:15:00.000Z",
            },
        },
    )  # fmt: skip


def sinch(text: str, sid: str) -> InboundRequest:
    return _json(
        "sinch",
        {
            "type": "mo_text",
            "id": sid,
            "from": "14155550100",
            "to": "12345",
            "body": text,
            "operator_id": "310260",
            "received_at": "2025-08-12T10:15:00.000Z",
        },
    )


def bandwidth(text: str, sid: str) -> InboundRequest:
    return _json(
        "bandwidth",
        [
            {
                "type": "message-received",
                "time": "2025-08-12T10:15:00.000Z",
                "description": "Incoming message received",
                "to": "+12065550123",
                "message": {
                    "id": sid,
                    "time": "2025-08-12T10:15:00.000Z",
                    "to": ["+12065550123"],
                    "from": "+14155550100",
                    "text": text,
                    "applicationId": "93de2206-9669-4e07-948d-329f4b722ee2",
                    "media": [],
                    "owner": "+12065550123",
                    "direction": "in",
                    "segmentCount": 1,
                },
            }
        ],
    )


def generic(text: str, sid: str) -> InboundRequest:
    return _json(
        "generic",
        {
            "type": "inbound",
            "message_id": sid,
            "from": "+14155550100",
            "to": "+12065550123",
            "text": text,
            "timestamp": "2025-08-12T10:15:00Z",
        },
    )


BUILDERS: dict[str, Callable[[str, str], InboundRequest]] = {
    "twilio": twilio,
    "telnyx": telnyx,
    "vonage": vonage,
    "plivo": plivo,
    "bird": bird,
    "sinch": sinch,
    "bandwidth": bandwidth,
    "generic": generic,
}
NUMBER = "+14155550100"


class Harness:
    """The ingress app on a recording producer, with its development keys."""

    def __init__(self, tmp_path: Path) -> None:
        self.settings = Settings(
            kafka_bootstrap="127.0.0.1:1", data_dir=tmp_path, dev_secrets=True, pii_salt=SALT
        )
        self.producer = RecordingProducer()
        self.app = create_app(self.settings, producer=self.producer)
        self.client = TestClient(self.app)
        self.data_dir = tmp_path

    def post(self, provider: str, request: InboundRequest) -> Any:
        keys: dict[str, Any] = json.loads((self.data_dir / "dev-secrets.json").read_text())
        signed = PROVIDERS[provider].sign(request, str(keys[provider]["key"]), int(time.time()))
        response = self.client.request(
            signed.method, signed.url, content=signed.body, headers=dict(signed.headers)
        )
        assert response.status_code == 200, response.text
        return response.json()

    def metric(self, provider: str, keyword: str) -> float:
        value = self.app.state.ingress.metrics.registry.get_sample_value(
            "dlr_ingress_inbound_messages_total", {"provider": provider, "keyword": keyword}
        )
        return float(value or 0.0)


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """One app for the module (making every provider's development keys takes ~0.5 s)."""
    h = Harness(tmp_path_factory.mktemp("inbound"))
    with h.client:
        yield h


@pytest.fixture
def harness(started: Harness) -> Harness:
    started.producer.records.clear()
    return started


@pytest.mark.parametrize("provider", sorted(BUILDERS))
def test_stop_start_and_help_are_produced_keyed_by_the_numbers_hash(
    harness: Harness, provider: str
) -> None:
    build = BUILDERS[provider]
    stops = harness.metric(provider, "stop")
    for index, text in enumerate(["STOP", "Start", "help"]):
        assert harness.post(provider, build(text, f"IN{index}")) == {
            "status": "accepted",
            "records": 1,
        }
    records = harness.producer.envelopes()
    key = INBOUND_KEY_PREFIX + number_hash(NUMBER, SALT).encode()
    assert [k for k, _ in records] == [key, key, key]
    assert [e.kind for _, e in records] == ["inbound"] * 3
    assert [e.payload["keyword"] for _, e in records] == ["stop", "start", "help"]
    assert {e.payload["number"] for _, e in records} == {NUMBER}
    assert [e.message_id for _, e in records] == [f"{provider}:IN{i}" for i in range(3)]
    assert harness.metric(provider, "stop") == stops + 1


@pytest.mark.parametrize("provider", sorted(BUILDERS))
def test_a_conversation_is_acknowledged_and_produced_nowhere(
    harness: Harness, provider: str
) -> None:
    before = harness.metric(provider, "none")
    assert harness.post(provider, BUILDERS[provider]("Thanks, see you at 5!", "IN9")) == {
        "status": "accepted",
        "records": 0,
    }
    assert harness.producer.records == []
    assert harness.metric(provider, "none") == before + 1


def test_twilios_own_opt_out_classification_wins(harness: Harness) -> None:
    harness.post("twilio", twilio("Please stop texting me", "SMhint", hint="STOP"))
    ((_, envelope),) = harness.producer.envelopes()
    assert (envelope.payload["keyword"], envelope.payload["language"]) == ("stop", "provider")


def test_a_keyword_from_no_phone_number_is_not_produced(harness: Harness) -> None:
    request = _json(
        "generic", {"type": "inbound", "message_id": "x", "from": "ACME", "text": "STOP"}
    )
    assert harness.post("generic", request)["records"] == 0
    assert harness.metric("generic", "no_number") == 1.0
