"""TLS benchmark (not a test): what the services' TLS costs next to uvicorn's own TLS.

The same bare endpoint (`bench/bare_app.py`: read the body, answer 200) is served by one
uvicorn process per mode, on a free port, one after the other:

    http            plain HTTP (the reference)
    uvicorn-tls     uvicorn's own TLS (`ssl_certfile`/`ssl_keyfile`): the bare framework
    dlr-tls         `ingress.tls.uvicorn_options`: our context, the reload check in every
                    handshake, the ASGI TLS extension on every connection
    uvicorn-mtls    uvicorn's own client certificates (`ssl_ca_certs`, CERT_OPTIONAL)
    dlr-mtls        ours with `DLR_TLS_CLIENT_CA` (no session resumption: every
                    connection verifies its certificate)

For each: a new connection per request (handshake + one POST) and requests over kept-alive
connections, from client threads in this process. The client is Python, so it is the
bottleneck for throughput; the server process's CPU per connection and per request (from
/proc) is the figure that compares.

Then the route checks a webhook pays in the app (`TransportPolicy.check` + `.hsts`, what
`ingress.webhook.webhook()` calls per request), timed in this process: HTTPS direct, HTTPS via
a trusted proxy, a client certificate matched against subject patterns, next to local mode
(nothing to check) as the baseline. `--checks-only` runs just that part (a few seconds).

    .venv/bin/python -m bench.transport [--seconds 8] [--threads 4] [--checks-only]
"""

from __future__ import annotations

import argparse
import http.client
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.ingress import stop
from bench.streams import cpu_s
from deploy.local.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
MODES = ("http", "uvicorn-tls", "dlr-tls", "uvicorn-mtls", "dlr-mtls")
BODY = b'{"message_id":"bench","status":"delivered"}'


def serve(mode: str, port: int, certs: Path) -> None:
    """The server side of one mode (runs in its own process)."""
    import uvicorn

    from bench.bare_app import app
    from ingress import tls
    from ingress.settings import TransportSettings

    cert, key, ca = certs / "server.crt", certs / "server.key", certs / "dlr-bench-ca.pem"
    options: dict[str, Any] = {}
    if mode.startswith("uvicorn-"):
        options = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
        if mode == "uvicorn-mtls":
            options |= {"ssl_ca_certs": str(ca), "ssl_cert_reqs": ssl.CERT_OPTIONAL}
    elif mode.startswith("dlr-"):
        client_ca = str(ca) if mode == "dlr-mtls" else ""
        settings = TransportSettings(tls_cert=cert, tls_key=key, tls_client_ca=client_ca)
        options = tls.uvicorn_options(settings)
    uvicorn.run(app, host=HOST, port=port, log_level="warning", access_log=False, **options)


def make_certs(directory: Path) -> None:
    from tests.certs import Authority

    ca = Authority(directory, "dlr-bench-ca")
    days = timedelta(days=20)  # not "expiring soon"
    ca.issue("server", "bench-server", ips=(HOST,), server=True, expires_in=days)
    ca.issue("client", "bench-client", expires_in=days)


def client_context(mode: str, certs: Path) -> ssl.SSLContext | None:
    if mode == "http":
        return None
    ctx = ssl.create_default_context(cafile=str(certs / "dlr-bench-ca.pem"))
    if mode.endswith("mtls"):
        ctx.load_cert_chain(certs / "client.crt", certs / "client.key")
    return ctx


def connection(port: int, ctx: ssl.SSLContext | None) -> http.client.HTTPConnection:
    if ctx is None:
        return http.client.HTTPConnection(HOST, port, timeout=10)
    return http.client.HTTPSConnection(HOST, port, context=ctx, timeout=10)


def post(conn: http.client.HTTPConnection) -> None:
    conn.request("POST", "/bare", body=BODY, headers={"content-type": "application/json"})
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"status {response.status}")


def load(port: int, ctx: ssl.SSLContext | None, seconds: float, threads: int, keep: bool) -> int:
    """Requests done in `seconds` by `threads` clients (each on one kept-alive connection,
    or a new connection per request)."""
    done = [0] * threads
    deadline = time.monotonic() + seconds

    def run(index: int) -> None:
        conn = connection(port, ctx) if keep else None
        while time.monotonic() < deadline:
            if conn is None:
                fresh = connection(port, ctx)
                post(fresh)
                fresh.close()
            else:
                post(conn)
            done[index] += 1
        if conn is not None:
            conn.close()

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(done)


def measure(mode: str, certs: Path, seconds: float, threads: int) -> dict[str, float]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.transport", "--serve", mode, str(port), str(certs)],
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        ctx = client_context(mode, certs)
        deadline = time.monotonic() + 30
        while True:
            try:
                post(connection(port, ctx))
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"{mode}: the server did not come up") from None
                time.sleep(0.2)
        out: dict[str, float] = {}
        for keep in (False, True):
            load(port, ctx, 1.0, threads, keep)  # warm-up
            before = cpu_s(proc.pid)[0]
            count = load(port, ctx, seconds, threads, keep)
            cpu = cpu_s(proc.pid)[0] - before
            kind = "kept" if keep else "new"
            out[f"{kind}_rps"] = count / seconds
            out[f"{kind}_cpu_us"] = cpu / max(count, 1) * 1e6
            print(
                f"[bench] {mode:<13} {'kept-alive' if keep else 'new conn.':<10} "
                f"{count / seconds:7.0f} req/s   server CPU {out[f'{kind}_cpu_us']:6.0f} us/req",
                flush=True,
            )
        return out
    finally:
        stop(proc)


def checks(certs: Path, rounds: int = 200_000) -> None:
    """Microseconds per request of the in-app transport checks, per setup."""
    from deploy.settings import Settings
    from ingress.transport import SubjectPatterns, TransportPolicy

    client = (certs / "client.crt").read_text()
    headers = [(b"host", b"dlr.example.com"), (b"content-type", b"application/json")]
    proxied = [*headers, (b"x-forwarded-proto", b"https")]
    tls = {"client_cert_chain": [client]}
    base: dict[str, Any] = {"kafka_bootstrap": "127.0.0.1:1", "data_dir": certs}
    subjects = {"generic": SubjectPatterns.parse("CN=bench-client*")}
    setups: dict[str, tuple[dict[str, Any], Any, dict[str, Any]]] = {
        "local (baseline)": ({"dev_secrets": True}, None, {"scheme": "http", "headers": headers}),
        "HTTPS direct": ({"dev_secrets": False}, None, {"scheme": "https", "headers": headers}),
        "HTTPS via proxy": (
            {"dev_secrets": False, "trusted_proxies": "10.0.0.0/8"},
            None,
            {"scheme": "http", "headers": proxied, "client": ("10.1.2.3", 50000)},
        ),
        "mutual TLS": (
            {"dev_secrets": False},
            subjects,
            {"scheme": "https", "headers": headers, "extensions": {"tls": tls}},
        ),
    }
    print(f"\nin-app transport checks per webhook (check + hsts), {rounds} rounds each")
    baseline = 0.0
    for label, (values, patterns, extra) in setups.items():
        policy = TransportPolicy(Settings(**{**base, **values}), patterns)
        scope = {"type": "http", "client": ("192.0.2.7", 50000), **extra}
        policy.check(scope, "generic", policy.secure(scope))  # refuses here if set up wrong

        def one(policy: TransportPolicy = policy, scope: dict[str, Any] = scope) -> None:
            secure = policy.secure(scope)  # once per request, as the ingress asks it
            policy.check(scope, "generic", secure)
            policy.hsts(secure)

        us = min(timeit.repeat(one, number=rounds, repeat=3)) / rounds * 1e6
        baseline = baseline or us
        print(f"{label:<18}{us:8.2f} us   {us / baseline:5.1f}x the baseline", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--checks-only", action="store_true", help="only the in-app checks")
    parser.add_argument("--serve", nargs=3, metavar=("MODE", "PORT", "CERTS"), help="internal")
    args = parser.parse_args()
    if args.serve:
        mode, port, certs = args.serve
        serve(mode, int(port), Path(certs))
        return 0
    with tempfile.TemporaryDirectory(prefix="dlr-bench-tls-") as tmp:
        certs = Path(tmp)
        make_certs(certs)
        if args.checks_only:
            checks(certs)
            return 0
        results = {mode: measure(mode, certs, args.seconds, args.threads) for mode in MODES}
        print(f"\nserver CPU per request (us), {args.threads} client threads, {args.seconds:g} s")
        print(f"{'mode':<14}{'new conn.':>10}{'kept-alive':>12}   vs uvicorn's own (new / kept)")
        for mode, r in results.items():
            versus = ""
            if mode.startswith("dlr-"):
                base = results["uvicorn-" + mode.split("-", 1)[1]]
                versus = (
                    f"   {r['new_cpu_us'] / base['new_cpu_us']:.2f}x / "
                    f"{r['kept_cpu_us'] / base['kept_cpu_us']:.2f}x"
                )
            print(f"{mode:<14}{r['new_cpu_us']:>10.0f}{r['kept_cpu_us']:>12.0f}{versus}")
        checks(certs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
