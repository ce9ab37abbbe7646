"""AWS End User Messaging SMS events, delivered by an Amazon SNS HTTP/S subscription.

SNS POSTs a JSON envelope (Content-Type `text/plain; charset=UTF-8` unless the delivery
policy says otherwise): `Type` (Notification | SubscriptionConfirmation |
UnsubscribeConfirmation), `MessageId`, `TopicArn`, `Subject`?, `Message` (the SMS event
JSON as a string), `Timestamp`, `SignatureVersion`, `Signature`, `SigningCertURL`,
`SubscribeURL` + `Token` (confirmations) or `UnsubscribeURL`.

Authenticity: `Signature` = base64 RSA PKCS#1 v1.5 signature, SHA-1 for SignatureVersion 1
and SHA-256 for 2, over "Key\\nValue\\n" lines of the signed keys in byte order. The
certificate comes from `SigningCertURL`, accepted only when it is
`https://sns.<region>.amazonaws.com[.cn]/SimpleNotificationService-<name>.pem`, fetched
with `context.fetch` (the caller caches it) unless certificates are pinned.

There is no shared secret, so `credentials.options` says SNS is configured:
    topic_arns     comma-separated TopicArns to accept (anything else is refused)
    pinned_certs   PEM bundle; when set, only these certificates verify and nothing is
                   fetched (local development, tests, or deliberate pinning)
    enabled        "true" to accept any topic with fetched certificates
Without any of them every request is refused (`NoCredentials`).

SNS retries one message for up to an hour with the same signed `Timestamp`, so the
timestamp window is max(context.window, 3600 s). `MessageId` is stable across those
retries: it is the replay key and every record's event id. A verified
SubscriptionConfirmation returns its `SubscribeURL` as `confirm_url` and yields no record.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from ingress.errors import (
    BadSignature,
    InvalidPayload,
    MalformedPayload,
    MissingHeader,
    NoCredentials,
    StaleTimestamp,
    UpstreamUnavailable,
)
from ingress.providers._common import check_window, key_id
from ingress.providers._contract import (
    Credentials,
    InboundRequest,
    Record,
    Verified,
    VerifyContext,
)

NAME = "sns"
METHODS = frozenset({"POST"})
CONTENT_TYPES = frozenset({"text/plain", "application/json"})

#: SNS retries for at most an hour, always with the original signed Timestamp.
MIN_WINDOW = 3600.0
NOTIFICATION = "Notification"
SUBSCRIPTION = "SubscriptionConfirmation"
UNSUBSCRIPTION = "UnsubscribeConfirmation"

_CERT_URL = re.compile(
    r"https://sns\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?/SimpleNotificationService-[A-Za-z0-9-]+\.pem"
)
_SNS_URL = re.compile(r"https://sns\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?/")
_SIGNED_KEYS = {
    NOTIFICATION: ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    SUBSCRIPTION: (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
    UNSUBSCRIPTION: (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_OPTIONAL_KEYS = frozenset({"Subject"})
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}

#: Certificate URL `sign` puts in dev envelopes (never fetched: dev certificates are pinned).
DEV_CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-dlr-local-dev.pem"
DEV_TOPIC_ARN = "arn:aws:sns:us-east-1:000000000000:dlr-local-sms-events"
_MAX_ID = 200


# -- envelope --------------------------------------------------------------------------


def _envelope(request: InboundRequest) -> dict[str, Any]:
    try:
        parsed: Any = request.json()
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload("body is not a JSON SNS envelope") from exc
    if not isinstance(parsed, dict):
        raise MalformedPayload("SNS envelope must be a JSON object")
    kind = parsed.get("Type")
    if not isinstance(kind, str) or kind not in _SIGNED_KEYS:  # a list is unhashable
        raise InvalidPayload("Type is not an SNS message type")
    return parsed


def _string_to_sign(envelope: dict[str, Any]) -> bytes:
    lines = []
    for name in _SIGNED_KEYS[envelope["Type"]]:
        value = envelope.get(name)
        if value is None and name in _OPTIONAL_KEYS:
            continue
        if not isinstance(value, str):
            raise InvalidPayload(f"{name} is required and must be a string")
        lines.append(f"{name}\n{value}\n")
    return "".join(lines).encode()


def _signature_field(envelope: dict[str, Any], name: str) -> str:
    value = envelope.get(name)
    if not isinstance(value, str) or not value.strip():
        raise MissingHeader(f"missing SNS field {name}")
    return value.strip()


def _timestamp(value: object, context: VerifyContext) -> float:
    if not isinstance(value, str):
        raise StaleTimestamp("Timestamp is not an ISO-8601 string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise StaleTimestamp("Timestamp is not ISO-8601") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return check_window(parsed.timestamp(), context.now, max(context.window, MIN_WINDOW))


# -- certificates ----------------------------------------------------------------------


def _configured(options: Mapping[str, str]) -> bool:
    return bool(
        options.get("topic_arns", "").strip()
        or options.get("pinned_certs", "").strip()
        or options.get("enabled", "").strip().lower() == "true"
    )


def _pinned(options: Mapping[str, str]) -> list[x509.Certificate]:
    pem = options.get("pinned_certs", "").strip()
    if not pem:
        return []
    try:
        return x509.load_pem_x509_certificates(pem.encode())
    except ValueError as exc:
        raise NoCredentials("pinned SNS certificates do not parse") from exc


async def _fetched(url: str, context: VerifyContext) -> list[x509.Certificate]:
    if context.fetch is None:
        raise BadSignature("no certificate fetcher and no pinned SNS certificate")
    try:
        pem = await context.fetch(url)
    except Exception as exc:  # any transport failure means: cannot verify now
        raise UpstreamUnavailable("could not fetch the SNS signing certificate") from exc
    try:
        return [x509.load_pem_x509_certificate(pem)]
    except ValueError as exc:
        raise BadSignature("SNS signing certificate does not parse") from exc


def _verifies(
    cert: x509.Certificate,
    signature: bytes,
    message: bytes,
    algorithm: hashes.HashAlgorithm,
    now: float,
) -> bool:
    moment = datetime.fromtimestamp(now, UTC)
    if not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
        return False
    public_key = cert.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        return False
    try:
        public_key.verify(signature, message, padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        return False
    return True


# -- verification ----------------------------------------------------------------------


async def verify(
    request: InboundRequest, credentials: Credentials, context: VerifyContext
) -> Verified:
    """Check certificate URL, topic and timestamp, then the RSA signature."""
    options = credentials.options
    if not _configured(options):
        raise NoCredentials("SNS is not configured (no topic_arns, pinned_certs or enabled)")
    envelope = _envelope(request)
    signature_b64 = _signature_field(envelope, "Signature")
    version = _signature_field(envelope, "SignatureVersion")
    cert_url = _signature_field(envelope, "SigningCertURL")
    algorithm = _HASHES.get(version)
    if algorithm is None:
        raise BadSignature(f"unsupported SignatureVersion {version[:8]!r}")
    if not _CERT_URL.fullmatch(cert_url):
        raise BadSignature("SigningCertURL is not an Amazon SNS certificate URL")
    topic = envelope.get("TopicArn")
    allowed = {t.strip() for t in options.get("topic_arns", "").split(",") if t.strip()}
    if allowed and topic not in allowed:
        raise BadSignature("TopicArn is not an accepted topic")
    message = _string_to_sign(envelope)
    signed_at = _timestamp(envelope.get("Timestamp"), context)
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadSignature("Signature is not base64") from exc
    certs = _pinned(options) or await _fetched(cert_url, context)
    for cert in certs:
        if _verifies(cert, signature, message, algorithm(), context.now):
            confirm_url = None
            if envelope["Type"] == SUBSCRIPTION:
                confirm_url = envelope["SubscribeURL"]
                if not _SNS_URL.match(confirm_url):
                    raise InvalidPayload("SubscribeURL is not an Amazon SNS URL")
            return Verified(
                key_id=key_id(cert.public_bytes(serialization.Encoding.DER)),
                replay_key=envelope["MessageId"],
                signed_at=signed_at,
                confirm_url=confirm_url,
            )
    raise BadSignature("no SNS certificate verifies the signature")


# -- extraction ------------------------------------------------------------------------


def extract(request: InboundRequest) -> list[Record]:
    """One record per Notification (the SMS event); confirmations yield none."""
    envelope = _envelope(request)
    if envelope["Type"] != NOTIFICATION:
        return []
    sns_id = envelope.get("MessageId")
    raw = envelope.get("Message")
    if not isinstance(sns_id, str) or not sns_id or len(sns_id) > _MAX_ID:
        raise InvalidPayload("MessageId is required (at most 200 characters)")
    if not isinstance(raw, str):
        raise InvalidPayload("Message is required and must be a string")
    try:
        event: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload("Message is not an SMS event JSON") from exc
    if not isinstance(event, dict):
        raise MalformedPayload("Message must be a JSON object")
    message_id = event.get("messageId")
    if not isinstance(message_id, str) or not message_id.strip():
        raise InvalidPayload("messageId is required and must be a non-empty string")
    if len(message_id) > _MAX_ID:
        raise InvalidPayload(f"messageId longer than {_MAX_ID} characters")
    if not isinstance(event.get("eventType"), str) or not event["eventType"]:
        raise InvalidPayload("eventType is required")
    payload = {
        **event,
        "snsMessageId": sns_id,
        "snsTimestamp": envelope.get("Timestamp"),
        "topicArn": envelope.get("TopicArn"),
    }
    return [
        Record(
            provider_message_id=message_id,
            message_key=message_id,
            payload=payload,
            event_id=sns_id,
        )
    ]


# -- signing ---------------------------------------------------------------------------


def _iso(now: int) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@functools.lru_cache(maxsize=16)
def _private_key(pem: str) -> rsa.RSAPrivateKey:
    """The RSA key of a PEM text, loaded once: loading validates the key (~0.1 s each)."""
    private_key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise ValueError("sns signing key must be an RSA private key")
    return private_key


def sign(request: InboundRequest, key: str, now: int) -> InboundRequest:
    """Sign as SNS would with `key` (PEM RSA private key).

    A body that is not an SNS envelope (no `Type`) is taken as the SMS event itself and
    wrapped into a Notification first. `Timestamp` is set to `now`; `SignatureVersion`
    defaults to 2 and `SigningCertURL` to `DEV_CERT_URL`.
    """
    private_key = _private_key(key)
    parsed: Any = orjson.loads(request.body) if request.body else {}
    if not isinstance(parsed, dict) or "Type" not in parsed:
        digest = hashlib.sha256(request.body).hexdigest()
        parsed = {
            "Type": NOTIFICATION,
            "MessageId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sns:{digest}")),
            "TopicArn": DEV_TOPIC_ARN,
            "Message": request.body.decode(),
        }
    envelope: dict[str, Any] = dict(parsed)
    envelope["Timestamp"] = _iso(now)
    envelope.setdefault("SignatureVersion", "2")
    envelope.setdefault("SigningCertURL", DEV_CERT_URL)
    algorithm = _HASHES.get(str(envelope["SignatureVersion"]))
    if algorithm is None:
        raise ValueError("SignatureVersion must be '1' or '2'")
    signature = private_key.sign(_string_to_sign(envelope), padding.PKCS1v15(), algorithm())
    envelope["Signature"] = base64.b64encode(signature).decode()
    headers = dict(request.headers)
    headers.setdefault("content-type", "text/plain; charset=UTF-8")
    headers["x-amz-sns-message-type"] = str(envelope["Type"])
    headers["x-amz-sns-message-id"] = str(envelope.get("MessageId", ""))
    headers["x-amz-sns-topic-arn"] = str(envelope.get("TopicArn", ""))
    return request.with_(headers=headers, body=orjson.dumps(envelope))


def self_signed(days: int = 3650) -> tuple[str, str]:
    """A fresh RSA key and self-signed certificate: (certificate PEM, private key PEM)."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dlr-local-sns-signing")])
    start = datetime.now(UTC) - timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .sign(private_key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return cert_pem, key_pem


def dev_credentials() -> tuple[Credentials, str]:
    """A pinned self-signed certificate, so local SNS works with no network."""
    cert_pem, key_pem = self_signed()
    return Credentials(options={"pinned_certs": cert_pem}), key_pem
