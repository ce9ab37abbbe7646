"""End-to-end latency benchmark (not a test): POST -> row in ClickHouse at a steady rate.

Starts a private stack (`dlr up` on its own ports and data dir), drives
`/webhooks/generic` at `--rate` signed, unique callbacks per second for `--seconds` with the
Go load generator, waits until every acknowledged callback is a row, then reports the
p50/p99 of `events.inserted_at - events.received_at` (ingress receive time to the row being
written) split at the worker's `emitted_at`, the CPU each process used from the first POST to
the last row (the whole stack shares the machine's cores, so this says where the capacity
goes) and the per-process peak RSS.

The stack gets none of the caller's `DLR_*` variables, so a setting under test is passed
with `--set` (repeatable): `--set DLR_PRODUCE_LINGER_MS=5`.

    .venv/bin/python -m bench.e2e [--rate 2000] [--seconds 20] [--set DLR_X=value ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from clickhouse_connect.driver.client import Client

from bench.ingress import build_loadgen
from bench.streams import cpu_s
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


def service_of(words: list[str]) -> str | None:
    """Which part of the stack a command line is: `dlr <service>`, ClickHouse or Kafka."""
    if "kafka.Kafka" in words:
        return "kafka"
    if "deploy.cli" in words and words.index("deploy.cli") + 1 < len(words):
        return words[words.index("deploy.cli") + 1]
    if "serve" in words and any("clickhouse" in word for word in words):
        return "clickhouse"
    return None


def stack_processes(data: Path) -> dict[int, str]:
    """The stack's processes (found by the DLR_DATA_DIR they inherited), pid -> service."""
    marker = f"DLR_DATA_DIR={data}".encode()
    out: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or marker not in (proc / "environ").read_bytes():
                continue
            words = (proc / "cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        name = service_of(words)
        if name is not None and name != "up":
            out[int(proc.name)] = name
    return out


def cpu_seconds(procs: dict[int, str]) -> dict[str, float]:
    """User + system CPU seconds used so far, per service."""
    out: dict[str, float] = {}
    for pid, name in procs.items():
        if Path(f"/proc/{pid}").exists():  # a process that ended is left out, not counted 0
            out[name] = out.get(name, 0.0) + cpu_s(pid)[0]
    return out


def peak_rss(procs: dict[int, str]) -> dict[str, float]:
    """VmHWM per service, in MB."""
    out: dict[str, float] = {}
    for pid, name in procs.items():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        hwm = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmHWM"))
        out[name] = max(out.get(name, 0.0), hwm / 1024)
    return out


def drive(loadgen: Path, base: str, key: str, seconds: int, rate: float) -> dict[str, Any]:
    """Signed, unique generic callbacks at `rate` over 64 connections; the generator's figures."""
    out = subprocess.run(
        [
            *(str(loadgen), "-url", f"{base}/webhooks/generic", "-mode", "generic"),
            *("-secret", key, "-c", "64", "-d", f"{seconds}s", "-rate", str(rate)),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def received_since(db: str, since: float) -> str:
    """FROM and WHERE of the events the ingress received from `since` (a time.time()) on."""
    return f"FROM {db}.events WHERE received_at >= fromUnixTimestamp64Milli({int(since * 1000)})"


def wait_rows(client: Client, db: str, since: float, expected: int) -> int:
    """Poll (2 minutes at most) until `expected` events received since `since` are rows."""
    rows, deadline = 0, time.monotonic() + 120
    while time.monotonic() < deadline:
        rows = int(str(client.command(f"SELECT uniqExact(event_id) {received_since(db, since)}")))
        print(f"[bench] rows {rows}/{expected}", flush=True)
        if rows >= expected:
            break
        time.sleep(1)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument(
        "--warmup", type=int, default=20, help="seconds of the same load first, not measured"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="DLR_X=value", help="a stack setting"
    )
    args = parser.parse_args()
    chosen = dict(item.split("=", 1) for item in args.set)
    if any(not name.startswith("DLR_") for name in chosen):
        parser.error("--set takes DLR_* settings")
    run = uuid.uuid4().hex[:8]
    data = ROOT / ".data" / "bench" / f"e2e-{run}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DLR_")},
        **PORTS,
        "DLR_DATA_DIR": str(data),
        "DLR_LOG_LEVEL": "WARNING",
        **chosen,
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
        procs = stack_processes(data)
        client = connect(settings)
        db = settings.clickhouse_database
        if args.warmup:
            # A fresh broker spends its first half minute compiling its hot paths (the JIT
            # took half a core, more than its requests); the other services warm up too.
            print(f"[bench] warm-up: {args.rate:.0f}/s for {args.warmup}s ...", flush=True)
            warm = drive(loadgen, base, key, args.warmup, args.rate)
            wait_rows(client, db, 0.0, warm["status"].get("200", 0))
        print(
            f"[bench] {args.rate:.0f} callbacks/s for {args.seconds}s"
            f"{' with ' + ' '.join(args.set) if args.set else ''}"
            f" (ingress and API at nice {settings.up_intake_nice}) ...",
            flush=True,
        )
        since = time.time()
        cpu_before = cpu_seconds(procs)
        loadgen_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        load = drive(loadgen, base, key, args.seconds, args.rate)
        loadgen_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        accepted = load["status"].get("200", 0)
        print(
            f"[bench] sent {load['requests']} ({load['rps']:.0f}/s), HTTP p50 "
            f"{load['p50_ms']:.1f} ms p99 {load['p99_ms']:.1f} ms, status {load['status']}",
            flush=True,
        )
        rows = wait_rows(client, db, since, accepted)
        cpu = {name: used - cpu_before.get(name, 0.0) for name, used in cpu_seconds(procs).items()}
        cpu["load generator"] = sum(
            getattr(loadgen_after, f) - getattr(loadgen_before, f) for f in ("ru_utime", "ru_stime")
        )
        took = time.monotonic() - started
        legs = client.query(
            "SELECT"
            " quantiles(0.5, 0.99, 1)(dateDiff('millisecond', received_at, inserted_at)),"
            " quantiles(0.5, 0.99)(dateDiff('millisecond', received_at, emitted_at)),"
            " quantiles(0.5, 0.99)(dateDiff('millisecond', emitted_at, inserted_at))"
            f" {received_since(db, since)}"
        ).result_rows[0]
        q = legs[0]
        print(
            f"\nPOST -> ClickHouse row at {load['rps']:.0f}/s over {rows} rows: "
            f"p50 {q[0]:.0f} ms, p99 {q[1]:.0f} ms, max {q[2]:.0f} ms"
        )
        print(
            f"  received -> emitted by the worker: p50 {legs[1][0]:.0f} ms, p99 {legs[1][1]:.0f} ms"
        )
        print(
            f"  emitted -> row written by the sink: p50 {legs[2][0]:.0f} ms,"
            f" p99 {legs[2][1]:.0f} ms"
        )
        print(
            f"\nCPU from the first POST to the last row ({took:.0f} s; "
            f"{os.cpu_count()} cores shared by all):"
        )
        for name, used in sorted(cpu.items(), key=lambda item: -item[1]):
            print(
                f"  {name:<15} {used:6.1f} s  {100 * used / took:5.0f} % of a core"
                f"  {1e6 * used / max(rows, 1):6.0f} us per callback"
            )
        print(f"  {'all':<15} {sum(cpu.values()):6.1f} s  {100 * sum(cpu.values()) / took:5.0f} %")
        for name, mb in sorted(peak_rss(procs).items()):
            print(f"peak RSS {name:<15} {mb:7.0f} MB")
    finally:
        os.killpg(stack.pid, signal.SIGINT)
        stack.wait(90)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
