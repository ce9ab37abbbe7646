"""Each provider's own callback for a simulated message (`dlr demo --providers all`).

`request()` builds the unsigned HTTP request a provider would send for one report of a
`traffic.Message`: form posts for Twilio and Plivo, JSON for the others (Telnyx events,
Sinch recipient reports, Infobip result batches, Bird platform events, Bandwidth arrays,
Vonage JSON receipts, Standard Webhooks and generic bodies) and, for AWS, the SMS event in an
SNS Notification envelope (on the local development topic). Network data only where the
provider really sends it (Vonage `network-code`, Plivo `MCC`/`MNC`, Infobip `mccMnc`,
AWS `mcc`/`mnc`/`carrierName`/`isoCountryCode`, Telnyx and Sinch the operator's name).
Prices, currencies and segment counts likewise only where the format carries them
(`PRICED`: Plivo `Units`/`TotalAmount`, Vonage `price` without a currency, Telnyx
`parts`/`cost`, Infobip `smsCount`/`price`, AWS `totalMessageParts`/`totalMessagePrice`,
Standard Webhooks and generic `segments`/`price`/`currency`; Bandwidth states segments only;
Twilio, Sinch and Bird status callbacks state neither). The caller signs it with the
provider module's `sign()` right before sending.

`STATUS` is each provider's wording of a report: step (`sent` or a `traffic.Outcome`) ->
(status, error code, the canonical state and failure reason the provider's mapping gives
it); a unit test runs every entry through the real extraction and mapping. `reported()`
and `stated_time()` say what the receipts state of a message's price and of its times,
so the demo's truth holds what the pipeline can know.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import orjson

from deploy.traffic import Message
from ingress.providers import sns
from ingress.providers._contract import InboundRequest

#: provider -> step -> (status, error code, canonical state, canonical failure reason)
STATUS: Mapping[str, Mapping[str, tuple[str, str | None, str, str | None]]] = {
    "twilio": {
        "sent": ("sent", None, "sent", None),
        "delivered": ("delivered", None, "delivered", None),
        "unreachable": ("undelivered", "30003", "undelivered", "unreachable"),
        "filtered": ("undelivered", "30007", "rejected", "carrier_filtered"),
        "blocked": ("undelivered", "30007", "rejected", "carrier_filtered"),
        "expired": ("undelivered", "30012", "undelivered", "expired"),
    },
    "vonage": {
        "sent": ("accepted", "0", "sent", None),
        "delivered": ("delivered", "0", "delivered", None),
        "unreachable": ("failed", "2", "undelivered", "unreachable"),
        "filtered": ("rejected", "6", "rejected", "carrier_filtered"),
        "blocked": ("rejected", "10", "rejected", "blocked_content"),
        "expired": ("expired", "0", "expired", "expired"),
    },
    "plivo": {
        "sent": ("sent", "000", "sent", None),
        "delivered": ("delivered", "000", "delivered", None),
        "unreachable": ("undelivered", "20", "undelivered", "unreachable"),
        "filtered": ("rejected", "30", "rejected", "carrier_filtered"),
        "blocked": ("rejected", "30", "rejected", "carrier_filtered"),
        "expired": ("undelivered", "420", "expired", "expired"),
    },
    "telnyx": {
        "sent": ("sent", None, "sent", None),
        "delivered": ("delivered", None, "delivered", None),
        "unreachable": ("delivery_failed", "40006", "undelivered", "unreachable"),
        "filtered": ("delivery_failed", "40002", "rejected", "carrier_filtered"),
        "blocked": ("delivery_failed", "40009", "rejected", "blocked_content"),
        "expired": ("expired", "40005", "expired", "expired"),
    },
    "sinch": {
        "sent": ("Dispatched", "401", "sent", None),
        "delivered": ("Delivered", "0", "delivered", None),
        "unreachable": ("Failed", "404", "undelivered", "unreachable"),
        "filtered": ("Rejected", "408", "rejected", "carrier_filtered"),
        "blocked": ("Rejected", "408", "rejected", "carrier_filtered"),
        "expired": ("Expired", "406", "expired", "expired"),
    },
    "infobip": {
        "sent": ("PENDING_ENROUTE", "0", "sent", None),
        "delivered": ("DELIVERED_TO_HANDSET", "0", "delivered", None),
        "unreachable": ("UNDELIVERABLE_NOT_DELIVERED", "6", "undelivered", "unreachable"),
        "filtered": ("UNDELIVERABLE_REJECTED_OPERATOR", "13", "rejected", "carrier_filtered"),
        "blocked": ("UNDELIVERABLE_REJECTED_OPERATOR", "13", "rejected", "carrier_filtered"),
        "expired": ("EXPIRED_EXPIRED", "0", "expired", "expired"),
    },
    "bird": {
        "sent": ("sent", None, "sent", None),
        "delivered": ("delivered", None, "delivered", None),
        "unreachable": ("delivery_failed", "unavailable_subscriber", "undelivered", "unreachable"),
        "filtered": ("delivery_failed", "carrier_rejected", "rejected", "carrier_filtered"),
        "blocked": ("delivery_failed", "carrier_rejected", "rejected", "carrier_filtered"),
        "expired": ("expired", "expired", "expired", "expired"),
    },
    "bandwidth": {
        "sent": ("message-sending", None, "sent", None),
        "delivered": ("message-delivered", None, "delivered", None),
        "unreachable": ("message-failed", "4730", "undelivered", "unreachable"),
        "filtered": ("message-failed", "4770", "rejected", "carrier_filtered"),
        "blocked": ("message-failed", "4771", "rejected", "blocked_content"),
        "expired": ("message-failed", "4360", "expired", "expired"),
    },
    "sns": {
        "sent": ("TEXT_SUCCESSFUL", "SUCCESSFUL", "sent", None),
        "delivered": ("TEXT_DELIVERED", "DELIVERED", "delivered", None),
        "unreachable": (
            "TEXT_CARRIER_UNREACHABLE",
            "CARRIER_UNREACHABLE",
            "undelivered",
            "unreachable",
        ),
        "filtered": ("TEXT_CARRIER_BLOCKED", "CARRIER_BLOCKED", "rejected", "carrier_filtered"),
        "blocked": ("TEXT_PROTECT_BLOCKED", "PROTECT_BLOCKED", "rejected", "blocked_content"),
        "expired": ("TEXT_TTL_EXPIRED", "TTL_EXPIRED", "expired", "expired"),
    },
    "standard": {
        "sent": ("sent", None, "sent", None),
        "delivered": ("delivered", None, "delivered", None),
        "unreachable": ("undelivered", "unreachable", "undelivered", "unreachable"),
        "filtered": ("rejected", "carrier_filtered", "rejected", "carrier_filtered"),
        "blocked": ("rejected", "blocked_content", "rejected", "blocked_content"),
        "expired": ("expired", "expired", "expired", "expired"),
    },
    "generic": {
        "sent": ("sent", None, "sent", None),
        "delivered": ("delivered", "0", "delivered", None),
        "unreachable": ("undelivered", "unreachable", "undelivered", "unreachable"),
        "filtered": ("rejected", "carrier_filtered", "rejected", "carrier_filtered"),
        "blocked": ("rejected", "blocked_content", "rejected", "blocked_content"),
        "expired": ("expired", "expired", "expired", "expired"),
    },
}

SENDER = "+12065550123"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def _hex(run: str, message: Message, size: int) -> str:
    return hashlib.sha256(f"{run}:{message.index}".encode()).hexdigest()[:size]


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"


def provider_message_id(run: str, message: Message) -> str:
    """The provider's id of the message, in the provider's own style."""
    h = _hex(run, message, 32)
    ids: dict[str, str] = {
        "twilio": f"SM{h}",
        "vonage": h[:16].upper(),
        "plivo": f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}",
        "telnyx": f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}",
        "sinch": f"01DEMO{h[:20].upper()}",
        "infobip": f"demo-{run}-{message.index}",
        "bird": f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}",
        "bandwidth": f"{int(message.sent_at)}{h[:15]}",
        "sns": f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}",
        "standard": f"demo_{run}_{message.index}",
        "generic": f"demo-{run}-{message.index:06d}",
    }
    return ids[message.provider]


def message_id(run: str, message: Message) -> str:
    """The pipeline's message id (`<provider>:<id>`, Sinch adds the recipient)."""
    pmid = provider_message_id(run, message)
    if message.provider == "sinch":
        return f"sinch:{pmid}:{message.number.lstrip('+')}"
    return f"{message.provider}:{pmid}"


Builder = Callable[[str, Message, str, float, str, str | None], tuple[str, str, str, bytes]]


def _twilio(run: str, m: Message, step: str, at: float, status: str, code: str | None) -> Any:
    sid = provider_message_id(run, m)
    form = [
        ("AccountSid", "AC" + _hex(run, m, 32)[::-1]),
        ("ApiVersion", "2010-04-01"),
        ("From", SENDER),
        ("MessageSid", sid),
        ("MessageStatus", status),
        ("SmsSid", sid),
        ("SmsStatus", status),
        ("To", m.number),
    ]
    if code is not None:
        form.insert(2, ("ErrorCode", code))
    return "POST", "", FORM, urlencode(form).encode()


def _plivo(run: str, m: Message, step: str, at: float, status: str, code: str | None) -> Any:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at)) + ".000000"
    form = [
        ("MessageUUID", provider_message_id(run, m)),
        ("From", SENDER.lstrip("+")),
        ("To", m.number.lstrip("+")),
        ("Type", "sms"),
        ("Status", status),
        ("Units", str(m.segments)),
        ("TotalRate", f"{m.price / m.segments:.5f}"),
        ("TotalAmount", f"{m.price:.5f}"),
        ("MCC", m.spec.mcc),
        ("MNC", m.spec.mnc),
        ("ErrorCode", code or ""),
        ("Sequence", "1" if step == "sent" else "2"),
        ("MessageTime", stamp),
    ]
    return "POST", "", FORM, urlencode(form).encode()


def _vonage(run: str, m: Message, step: str, at: float, status: str, code: str | None) -> Any:
    body = {
        "msisdn": m.number.lstrip("+"),
        "to": "ACME",
        "network-code": m.spec.mcc + m.spec.mnc,
        "messageId": provider_message_id(run, m),
        "price": f"{m.price:.8f}",
        "status": status,
        "scts": time.strftime("%y%m%d%H%M", time.gmtime(at)),
        "err-code": code,
        "message-timestamp": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at)),
        "client-ref": m.campaign,
    }
    return "POST", "", JSON, orjson.dumps(body)


def _telnyx(run: str, m: Message, step: str, at: float, status: str, code: str | None) -> Any:
    final = step != "sent"
    errors = [{"code": code, "title": "demo", "detail": "simulated"}] if code else []
    payload = {
        "id": provider_message_id(run, m),
        "direction": "outbound",
        "type": "SMS",
        "from": {"phone_number": SENDER, "carrier": "TELNYX LLC", "line_type": "VoIP"},
        "to": [
            {
                "phone_number": m.number,
                "status": status,
                "carrier": m.spec.stated,
                "line_type": "Wireless",
            }
        ],
        "parts": m.segments,
        "cost": {"amount": f"{m.price:.5f}", "currency": m.currency},
        "errors": errors,
        ("completed_at" if final else "sent_at"): _iso(at),
    }
    event = {
        "data": {
            "event_type": "message.finalized" if final else "message.sent",
            "id": _hex(run, m, 32)[:8] + f"-{step[:4]:0<4}-4000-8000-" + _hex(run, m, 12),
            "occurred_at": _iso(at),
            "record_type": "event",
            "payload": payload,
        },
        "meta": {"attempt": 1, "delivered_to": "http://127.0.0.1/webhooks/telnyx"},
    }
    return "POST", "", JSON, orjson.dumps(event)


def _sinch(run: str, m: Message, step: str, at: float, status: str, code: str | None) -> Any:
    body = {
        "type": "recipient_delivery_report_sms",
        "batch_id": provider_message_id(run, m),
        "recipient": m.number.lstrip("+"),
        "code": int(code) if code else 0,
        "status": status,
        "at": _iso(at),
        "operator": m.spec.stated,
        "client_reference": m.campaign,
    }
    return "POST", "", JSON, orjson.dumps(body)


_INFOBIP_IDS = {
    "PENDING_ENROUTE": (1, "PENDING", 7),
    "DELIVERED_TO_HANDSET": (3, "DELIVERED", 5),
    "UNDELIVERABLE_NOT_DELIVERED": (2, "UNDELIVERABLE", 9),
    "UNDELIVERABLE_REJECTED_OPERATOR": (2, "UNDELIVERABLE", 4),
    "EXPIRED_EXPIRED": (4, "EXPIRED", 15),
}


def _infobip(run: str, m: Message, step: str, at: float, status: str, code: str | None) -> Any:
    group, group_name, status_id = _INFOBIP_IDS[status]
    result = {
        "bulkId": f"demo-{run}",
        "messageId": provider_message_id(run, m),
        "to": m.number.lstrip("+"),
        "sentAt": _iso(m.sent_at).replace("Z", "+0000"),
        "doneAt": _iso(at).replace("Z", "+0000"),
        "smsCount": m.segments,
        "mccMnc": m.spec.mcc + m.spec.mnc,
        "callbackData": m.campaign,
        # the price of the message (its smsCount segments), as the mapping reads it
        "price": {"pricePerMessage": m.price, "currency": m.currency},
        "status": {"groupId": group, "groupName": group_name, "id": status_id, "name": status},
        "error": {"groupId": 0, "id": int(code or 0), "permanent": False},
    }
    return "POST", "", JSON, orjson.dumps({"results": [result]})


def _bird(run: str, m: Message, step: str, at: float, status: str, code: str | None) -> Any:
    payload: dict[str, Any] = {
        "id": provider_message_id(run, m),
        "channelId": "614208aa-b153-4d5d-9989-2fddfc0ce4c3",
        "sender": {"connector": {"id": "86cc4dc0", "identifierValue": SENDER}},
        "receiver": {"contacts": [{"identifierKey": "phonenumber", "identifierValue": m.number}]},
        "reference": m.campaign,
        "status": status,
        "direction": "outgoing",
        "lastStatusAt": _iso(at),
    }
    if code is not None:
        payload["reason"] = f"details: simulated; reason: {code}; code: 0"
        payload["details"] = code
    body = {"service": "channels", "event": "sms.outbound", "payload": payload}
    return "POST", "", JSON, orjson.dumps(body)


def _bandwidth(run: str, m: Message, step: str, at: float, status: str, code: str | None) -> Any:
    event: dict[str, Any] = {
        "type": status,
        "time": _iso(at),
        "description": "ok" if code is None else "simulated",
        "to": m.number,
        "message": {
            "id": provider_message_id(run, m),
            "time": _iso(m.sent_at),
            "to": [m.number],
            "from": SENDER,
            "text": "",
            "applicationId": "93de2206-9669-4e07-948d-329f4b722ee2",
            "owner": SENDER,
            "direction": "out",
            "segmentCount": m.segments,
        },
    }
    if code is not None:
        event["errorCode"] = int(code)
    return "POST", "", JSON, orjson.dumps([event])


def _sns(run: str, m: Message, step: str, at: float, status: str, code: str | None) -> Any:
    event = {
        "eventType": status,
        "eventVersion": "1.0",
        "eventTimestamp": int(at * 1000),
        "isFinal": step != "sent",
        "originationPhoneNumber": SENDER,
        "destinationPhoneNumber": m.number,
        "isoCountryCode": m.spec.country,
        "mcc": m.spec.mcc,
        "mnc": m.spec.mnc,
        "carrierName": m.spec.stated,
        "messageId": provider_message_id(run, m),
        "messageRequestTimestamp": int(m.sent_at * 1000),
        "messageEncoding": "GSM",
        "messageType": "TRANSACTIONAL",
        "messageStatus": code,
        "messageStatusDescription": "simulated",
        "context": {"campaign": m.campaign},
        "totalMessageParts": m.segments,
        "totalMessagePrice": m.price,
    }
    text = orjson.dumps(event).decode()
    envelope = {  # sns.sign adds Timestamp, SignatureVersion, SigningCertURL and Signature
        "Type": "Notification",
        "MessageId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sns:{run}:{m.index}:{step}")),
        "TopicArn": sns.DEV_TOPIC_ARN,
        "Message": text,
    }
    return "POST", "", "text/plain; charset=UTF-8", orjson.dumps(envelope)


def _standard(run: str, m: Message, step: str, at: float, status: str, code: str | None) -> Any:
    data = {
        "message_id": provider_message_id(run, m),
        "to": m.number,
        "from": SENDER,
        "status": status,
        "error_code": code,
        "timestamp": _iso(at),
        "mcc": m.spec.mcc,
        "mnc": m.spec.mnc,
        "campaign": m.campaign,
        "segments": m.segments,
        "price": m.price,
        "currency": m.currency,
    }
    body = {"type": "message.status", "timestamp": _iso(at), "data": data}
    return "POST", "", JSON, orjson.dumps(body)


def _generic(run: str, m: Message, step: str, at: float, status: str, code: str | None) -> Any:
    body = {
        "message_id": provider_message_id(run, m),
        "to": m.number,
        "from": "ACME",
        "status": status,
        "provider_status_code": code,
        "error": None,
        "timestamp": _iso(at),
        "campaign": m.campaign,
        "segments": m.segments,
        "price": m.price,
        "currency": m.currency,
    }
    return "POST", "", JSON, orjson.dumps(body)


BUILDERS: Mapping[str, Builder] = {
    "twilio": _twilio,
    "vonage": _vonage,
    "plivo": _plivo,
    "telnyx": _telnyx,
    "sinch": _sinch,
    "infobip": _infobip,
    "bird": _bird,
    "bandwidth": _bandwidth,
    "sns": _sns,
    "standard": _standard,
    "generic": _generic,
}


def steps(message: Message) -> list[tuple[str, float]]:
    """(step, time) of the reports a message gets: `sent`, then its outcome if reported."""
    out = [("sent", message.sent_at)]
    if message.final_at is not None:
        out.append((message.outcome, message.final_at))
    return out


def final_state(message: Message) -> str:
    """The canonical state the message must end in."""
    step = steps(message)[-1][0]
    return STATUS[message.provider][step][2]


def failure_reason(message: Message) -> str | None:
    """The canonical failure reason the message must end with (None: not failed)."""
    step = steps(message)[-1][0]
    return STATUS[message.provider][step][3]


#: provider -> (states segments, states a price, states its currency) on its receipts.
PRICED: Mapping[str, tuple[bool, bool, bool]] = {
    "twilio": (False, False, False),
    "vonage": (False, True, False),
    "plivo": (True, True, True),  # always USD, implied by the mapping
    "telnyx": (True, True, True),
    "sinch": (False, False, False),
    "infobip": (True, True, True),
    "bird": (False, False, False),
    "bandwidth": (True, False, False),
    "sns": (True, True, True),  # always USD, implied by the mapping
    "standard": (True, True, True),
    "generic": (True, True, True),
}


def reported(message: Message) -> tuple[int | None, float | None, str | None]:
    """(segments, price, currency) as the message's receipts state them."""
    segments, price, currency = PRICED[message.provider]
    return (
        message.segments if segments else None,
        message.price if price else None,
        message.currency if currency else None,
    )


#: Providers whose callbacks carry our campaign (AWS `context`, Standard Webhooks and generic
#: bodies). The others echo a client reference at most (the simulator puts the campaign
#: there); in production the campaign of their messages comes from the sender's
#: registration (`dlr api`) or a callback token.
CAMPAIGN_CARRIED = frozenset({"sns", "standard", "generic"})


def campaign(message: Message) -> str | None:
    """The campaign the pipeline learns from the message's receipts (None: none)."""
    return message.campaign if message.provider in CAMPAIGN_CARRIED else None


#: Providers whose receipts state their time only to the second; Twilio states none.
_SECONDS = frozenset({"vonage", "plivo"})


def stated_time(provider: str, at: float) -> float | None:
    """The time of a report at `at` as the provider's receipt states it (None: it states
    none, the pipeline uses its own receipt time): to the second or the millisecond,
    truncated exactly as the builders above write it."""
    if provider == "twilio":
        return None
    if provider in _SECONDS:
        return float(math.floor(at))
    if provider == "sns":
        return int(at * 1000) / 1000
    return math.floor(at) + (int(at * 1000) % 1000) / 1000


def request(base_url: str, run: str, message: Message, step: str, at: float) -> InboundRequest:
    """The unsigned callback for one report of `message`."""
    status, code, *_ = STATUS[message.provider][step]
    method, query, content_type, body = BUILDERS[message.provider](
        run, message, step, at, status, code
    )
    url = f"{base_url}/webhooks/{message.provider}" + (f"?{query}" if query else "")
    return InboundRequest(method, url, {"content-type": content_type}, body)
