"""The /healthz and /metrics server every sink process runs (aiohttp)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

__all__ = ["serve_metrics"]


async def serve_metrics(
    registry: CollectorRegistry, host: str, port: int, *more: CollectorRegistry
) -> web.AppRunner:
    """Serve `/healthz` (process up) and `/metrics` (the registries, e.g. one per loop of
    the process); returns the runner to clean up."""

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def metrics(request: web.Request) -> web.Response:
        body = b"".join(generate_latest(r) for r in (registry, *more))
        return web.Response(body=body, content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
