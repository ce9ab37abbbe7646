"""Reads a request body incrementally, refusing it as soon as it exceeds the limit."""

from __future__ import annotations

from starlette.requests import Request

from ingress.errors import PayloadTooLarge


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body, never buffering more than `limit` bytes (413 beyond)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)
