"""Baselines: a bare Starlette endpoint that reads the body, 200 (bench/ingress.py), one
that produces it to Kafka with aiokafka's `send_and_wait`, 202 (bench/api.py), and one
that answers a GET with a constant JSON (bench/suppressions.py: the HTTP floor)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from aiokafka import AIOKafkaProducer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def bare(request: Request) -> Response:
    """Read the whole body, answer 200 with a tiny JSON body (what the ingress answers)."""
    await request.body()
    return Response(b'{"status":"accepted","records":1}', media_type="application/json")


app = Starlette(routes=[Route("/bare", bare, methods=["POST"])])


_producer: list[AIOKafkaProducer] = []


@asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    producer = AIOKafkaProducer(
        bootstrap_servers=os.environ["BENCH_BOOTSTRAP"], acks="all", enable_idempotence=False
    )
    await producer.start()
    _producer.append(producer)
    try:
        yield
    finally:
        await producer.stop()


async def produce(request: Request) -> Response:
    """What a naive sender API does: parse, produce keyed by message id, wait for the ack."""
    body = await request.body()
    key = orjson.loads(body)["message_id"].encode()
    await _producer[0].send_and_wait(os.environ["BENCH_TOPIC"], body, key=key)
    return Response(b'{"status":"accepted"}', status_code=202, media_type="application/json")


produce_app = Starlette(
    routes=[Route("/v1/messages", produce, methods=["POST"])], lifespan=_lifespan
)


async def constant(request: Request) -> Response:
    """What a lookup endpoint costs when looking up costs nothing."""
    return Response(b'{"number":"+12000000000","suppressed":false}', media_type="application/json")


lookup_app = Starlette(routes=[Route("/lookup/{number}", constant, methods=["GET"])])
