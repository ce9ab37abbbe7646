"""Reads a request body incrementally, refusing it as soon as it exceeds the limit."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import ClientDisconnect
from starlette.types import Receive

from ingress.errors import PayloadTooLarge


async def read_limited(receive: Receive, headers: Mapping[str, str], limit: int) -> bytes:
    """The whole body, never buffering more than `limit` bytes (413 beyond).

    Reads the ASGI messages directly: a webhook body nearly always arrives in one message,
    which is then returned as it is, without Starlette's stream generator around it. A
    client that hangs up raises Starlette's `ClientDisconnect`.
    """
    declared = headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the {limit}-byte limit")
        if not message.get("more_body", False):
            if not chunks:
                return chunk
            chunks.append(chunk)
            return b"".join(chunks)
        chunks.append(chunk)
