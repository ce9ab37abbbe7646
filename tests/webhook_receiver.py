"""A webhook receiver that fails on purpose, run as its own process by the tests.

    python -m tests.webhook_receiver --port P --secret whsec_...

Every request is verified with the `standardwebhooks` library (a bad one gets 401 and
is counted as `invalid`) and deduplicated by `webhook-id`: a repeat of an id that was
already accepted is answered 200 and counted, never delivered twice. The path chooses
the behaviour, per webhook-id:

    /ok                   200
    /fail/N               500 for the first N attempts, then 200
    /timeout/N            the first N attempts hang for 30 s, then 200
    /429/N/S              429 with `Retry-After: S` for the first N attempts, then 200
    /gone/NAME            410 until `POST /_accept?path=/gone/NAME`, then 200
    /slow/MS              200 after MS milliseconds

`GET /_stats` answers {"invalid": n, "paths": {path: {id: {"times": [...], "delivered": k,
"delivered_at": t, "duplicates": d, "body": {...}}}}} (times: when each attempt arrived,
`delivered_at`: when the first 200 went out, epoch seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import defaultdict
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError


class Receiver:
    """The state and the handler of the receiver."""

    def __init__(self, secret: str) -> None:
        self.verifier = Webhook(secret)
        self.invalid = 0
        self.accepting: set[str] = set()
        self.ids: defaultdict[str, dict[str, dict[str, Any]]] = defaultdict(dict)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        path = request.path
        try:
            payload = self.verifier.verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.invalid += 1
            return web.Response(status=401, text="bad signature")
        msg_id = request.headers["webhook-id"]
        seen = self.ids[path].setdefault(
            msg_id, {"times": [], "delivered": 0, "duplicates": 0, "body": payload}
        )
        seen["times"].append(time.time())
        attempt = len(seen["times"])
        parts = path.strip("/").split("/")
        kind = parts[0]
        if kind == "fail" and attempt <= int(parts[1]):
            return web.Response(status=500, text="failing on purpose")
        if kind == "timeout" and attempt <= int(parts[1]):
            await asyncio.sleep(30)
        if kind == "429" and attempt <= int(parts[1]):
            return web.Response(status=429, headers={"Retry-After": parts[2]}, text="slow down")
        if kind == "gone" and path not in self.accepting:
            return web.Response(status=410, text="gone")
        if kind == "slow":
            await asyncio.sleep(int(parts[1]) / 1000)
        if seen["delivered"]:
            seen["duplicates"] += 1
        else:
            seen["delivered"] = 1
            seen["delivered_at"] = time.time()
        return web.Response(status=200, text="ok")

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({"invalid": self.invalid, "paths": self.ids})

    async def accept(self, request: web.Request) -> web.Response:
        self.accepting.add(request.query["path"])
        return web.json_response({"accepting": sorted(self.accepting)})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args()
    receiver = Receiver(args.secret)
    app = web.Application()
    app.router.add_get("/_stats", receiver.stats)
    app.router.add_post("/_accept", receiver.accept)
    app.router.add_post("/{tail:.*}", receiver.handle)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()


class ReceiverProcess:
    """The receiver above as a child process of a test, and its statistics."""

    def __init__(self, port: int, secret: str) -> None:
        self.port = port
        self.secret = secret
        self.proc: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        import subprocess
        import sys

        import httpx

        from tests.conftest import ROOT

        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.webhook_receiver",
                "--port",
                str(self.port),
                "--secret",
                self.secret,
            ],
            cwd=ROOT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base_url}/_stats", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the webhook receiver did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()  # requests hanging on purpose would delay a graceful stop
            self.proc.wait(10)

    def stats(self, path: str) -> dict[str, dict[str, Any]]:
        """Per webhook-id: attempt times, delivered (0/1), duplicates, body."""
        import httpx

        data = httpx.get(f"{self.base_url}/_stats", timeout=5).json()
        assert data["invalid"] == 0, "a request failed signature verification"
        found: dict[str, dict[str, Any]] = data["paths"].get(path, {})
        return found

    def accept(self, path: str) -> None:
        import httpx

        httpx.post(f"{self.base_url}/_accept", params={"path": path}, timeout=5)

    def wait_delivered(self, path: str, ids: set[str], timeout: float = 30) -> dict[str, Any]:
        """Poll until every id in `ids` was delivered on `path` (or the deadline)."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats(path)
            if {i for i, s in stats.items() if s["delivered"]} >= ids:
                return stats
            if time.monotonic() > deadline:
                return stats
            time.sleep(0.1)
