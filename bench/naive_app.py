"""The second baseline for bench/ingress.py: the handler a team writes in an afternoon.

Reads the body, checks the signature (generic: HMAC-SHA256 over "{timestamp}.{body}" with
a 300 s window; Twilio: HMAC-SHA1 over the URL and the sorted form parameters), takes the
message id and `send_and_wait`s the raw body to Kafka (acks=all) keyed by it, then answers
the same 200 JSON as the ingress. No metrics, no replay check, no envelope, no 503.

    DLR_KAFKA_BOOTSTRAP=... DLR_RAW_TOPIC=... DLR_GENERIC_SECRETS=... DLR_TWILIO_SECRETS=... \
        uvicorn bench.naive_app:app
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl

import orjson
from aiokafka import AIOKafkaProducer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TOPIC = os.environ.get("DLR_RAW_TOPIC", "dlr.raw.v1")
GENERIC_SECRET = os.environ.get("DLR_GENERIC_SECRETS", "").encode()
TWILIO_TOKEN = os.environ.get("DLR_TWILIO_SECRETS", "").encode()
ACCEPTED = {"status": "accepted", "records": 1}
producer: AIOKafkaProducer


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    global producer
    producer = AIOKafkaProducer(
        bootstrap_servers=os.environ.get("DLR_KAFKA_BOOTSTRAP", "127.0.0.1:9092"), acks="all"
    )
    await producer.start()
    try:
        yield
    finally:
        await producer.stop()


async def generic(request: Request) -> Response:
    body = await request.body()
    timestamp = request.headers.get("x-webhook-timestamp", "")
    signature = request.headers.get("x-webhook-signature", "").removeprefix("v1=")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
        return JSONResponse({"error": "stale_timestamp"}, 401)
    expected = hmac.new(GENERIC_SECRET, timestamp.encode() + b"." + body, hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest(), signature):
        return JSONResponse({"error": "bad_signature"}, 401)
    message_id = orjson.loads(body)["message_id"]
    await producer.send_and_wait(TOPIC, body, key=message_id.encode())
    return JSONResponse(ACCEPTED)


async def twilio(request: Request) -> Response:
    body = await request.body()
    params = parse_qsl(body.decode(), keep_blank_values=True)
    signed = str(request.url) + "".join(k + v for k, v in sorted(params))
    expected = hmac.new(TWILIO_TOKEN, signed.encode(), hashlib.sha1).digest()
    received = request.headers.get("x-twilio-signature", "")
    if not hmac.compare_digest(base64.b64encode(expected).decode(), received):
        return JSONResponse({"error": "bad_signature"}, 401)
    message_id = dict(params)["MessageSid"]
    await producer.send_and_wait(TOPIC, body, key=message_id.encode())
    return JSONResponse(ACCEPTED)


app = Starlette(
    routes=[
        Route("/webhooks/generic", generic, methods=["POST"]),
        Route("/webhooks/twilio", twilio, methods=["POST"]),
    ],
    lifespan=lifespan,
)
