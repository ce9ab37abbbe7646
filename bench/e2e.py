"""End-to-end latency benchmark (not a test): POST -> row in ClickHouse at a steady rate.

Starts a private stack (`dlr up` on its own ports and data dir), drives
`/webhooks/generic` at `--rate` signed, unique callbacks per second for `--seconds` with the
Go load generator, waits until every acknowledged callback is a row, then reports the
p50/p99 of `events.inserted_at - events.received_at` (ingress receive time to the row being
written) and the per-process peak RSS.

    .venv/bin/python -m bench.e2e [--rate 2000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from bench.ingress import build_loadgen
from deploy.settings import Settings
from sinks.clickhouse.client import connect

ROOT = Path(__file__).resolve().parent.parent
PORTS = {
    "DLR_KAFKA_PORT": "39092",
    "DLR_KAFKA_CONTROLLER_PORT": "39093",
    "DLR_CLICKHOUSE_HTTP_PORT": "38123",
    "DLR_CLICKHOUSE_TCP_PORT": "39009",
    "DLR_INGRESS_PORT": "38080",
    "DLR_WORKER_WEB_PORT": "36066",
    "DLR_SINK_METRICS_PORT": "39108",
}


def peak_rss(data: Path) -> dict[str, float]:
    """VmHWM of the stack's processes (found by the DLR_DATA_DIR they inherited)."""
    marker = f"DLR_DATA_DIR={data}".encode()
    out: dict[str, float] = {}
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or marker not in (proc / "environ").read_bytes():
                continue
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            status = (proc / "status").read_text()
        except OSError:
            continue
        for name in ("ingress", "worker", "sink", "clickhouse serve", "kafka.Kafka"):
            if name in cmd:
                hwm = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmHWM"))
                out[name] = max(out.get(name, 0.0), hwm / 1024)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    data = ROOT / ".data" / "bench" / f"e2e-{run}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DLR_")},
        **PORTS,
        "DLR_DATA_DIR": str(data),
        "DLR_LOG_LEVEL": "WARNING",
    }
    settings = Settings.from_vars(env)
    loadgen = build_loadgen()
    stack = subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", "up"], cwd=ROOT, env=env, start_new_session=True
    )
    try:
        base = f"http://127.0.0.1:{settings.ingress_port}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        time.sleep(3)  # let the worker finish joining its group
        key = json.loads((data / "dev-secrets.json").read_text())["generic"]["key"]
        print(f"[bench] {args.rate:.0f} callbacks/s for {args.seconds}s ...", flush=True)
        out = subprocess.run(
            [
                str(loadgen),
                "-url",
                f"{base}/webhooks/generic",
                "-mode",
                "generic",
                "-secret",
                key,
                "-c",
                "64",
                "-d",
                f"{args.seconds}s",
                "-rate",
                str(args.rate),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        load = json.loads(out.stdout)
        accepted = load["status"].get("200", 0)
        print(
            f"[bench] sent {load['requests']} ({load['rps']:.0f}/s), HTTP p50 "
            f"{load['p50_ms']:.1f} ms p99 {load['p99_ms']:.1f} ms, status {load['status']}",
            flush=True,
        )
        client = connect(settings)
        db = settings.clickhouse_database
        rows = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            rows = int(str(client.command(f"SELECT uniqExact(event_id) FROM {db}.events")))
            print(f"[bench] rows {rows}/{accepted}", flush=True)
            if rows >= accepted:
                break
            time.sleep(1)
        q = client.query(
            f"SELECT quantiles(0.5, 0.99, 1)(dateDiff('millisecond', received_at, inserted_at))"
            f" FROM {db}.events"
        ).result_rows[0][0]
        print(
            f"\nPOST -> ClickHouse row at {load['rps']:.0f}/s over {rows} rows: "
            f"p50 {q[0]:.0f} ms, p99 {q[1]:.0f} ms, max {q[2]:.0f} ms"
        )
        for name, mb in sorted(peak_rss(data).items()):
            print(f"peak RSS {name:<17} {mb:7.0f} MB")
    finally:
        os.killpg(stack.pid, signal.SIGINT)
        stack.wait(90)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
