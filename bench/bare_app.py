"""The baseline for bench/ingress.py: a bare Starlette endpoint that reads the body, 200."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def bare(request: Request) -> Response:
    """Read the whole body, answer 200 with a tiny JSON body (what the ingress answers)."""
    await request.body()
    return Response(b'{"status":"accepted","records":1}', media_type="application/json")


app = Starlette(routes=[Route("/bare", bare, methods=["POST"])])
