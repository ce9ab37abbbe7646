"""Ingress benchmark (not a test): the project's ingress next to the two baselines.

Three servers, each one uvicorn process (uvloop + httptools), all up for the whole run:

- the project: `dlr ingress` (`/webhooks/generic`, `/webhooks/twilio`: verified, replay-
  checked, enveloped, Kafka-acknowledged, counted in metrics);
- the naive handler (`bench/naive_app.py`): what a team writes in an afternoon, the same
  signature checks and `send_and_wait(acks="all")` of the raw body;
- a bare Starlette endpoint that reads the body and answers 200 (`bench/bare_app.py`).

The Go load generator (`bench/loadgen`, 64 keep-alive connections, unique signed
requests) first drives every route for `--warmup` seconds, unmeasured, so that no server
is measured against a broker whose JIT is still cold; then each endpoint in turn;
`--rounds` repeats the whole sequence, odd rounds taking the servers in the other order,
so that the ratios come from neighbouring runs. With two or more cores the servers are
pinned to core 0 and the load generator and the broker to core 1, so that a server has
one core of its own. Prints req/s, p50/p99, server CPU per request (steadier than req/s
on a busy machine) and the broker's CPU per request, the ratio of each project route to
the naive handler and of everything to the bare endpoint, and checks that every
acknowledged request of the project and of the naive handler is in Kafka.

    .venv/bin/python -m bench.ingress [--seconds 15] [--rounds 1] [--connections 64]
        [--warmup 8] [--project-env DLR_PRODUCE_LINGER_MS=5 ...]
    .venv/bin/python -m bench.ingress --workers 2 --only project   # the scaling figure
    .venv/bin/python -m bench.ingress --variant DLR_PRODUCE_REPORTS=poll  # A/B, one run

`--variant` adds a fourth server: the project again with those settings on top, measured
in the same rounds, its rows labelled "variant" and compared with the naive handler too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench._broker import local_broker
from bench.streams import cpu_s
from deploy.local import kafka
from deploy.settings import Settings
from deploy.topics import ensure_topics

ROOT = Path(__file__).resolve().parent.parent
GENERIC_SECRET = "bench-generic-secret"
TWILIO_TOKEN = "bench-twilio-token"
SECRETS = {"generic": GENERIC_SECRET, "twilio": TWILIO_TOKEN, "bare": ""}


def build_loadgen() -> Path:
    """Compile the Go load generator (stdlib only: builds offline)."""
    if shutil.which("go") is None:
        raise SystemExit("the load generator needs Go (go build)")
    out = ROOT / ".cache" / "loadgen"
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["go", "build", "-o", str(out), "."], cwd=ROOT / "bench" / "loadgen", check=True)
    return out


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def serve(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def tree(pid: int) -> list[int]:
    """A process and all its descendants (uvicorn --workers N forks its workers)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in (task / "children").read_text().split()]
    return found


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process tree."""
    return sum(cpu_s(p)[0] for p in tree(pid))


def pin(pid: int, cpus: set[int]) -> None:
    """Bind every thread of a process tree (the broker's JVM has dozens) to these cores."""
    for process in tree(pid):
        for task in Path(f"/proc/{process}/task").glob("*"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(task.name), cpus)


@dataclass
class Server:
    """One server under test and how to reach it."""

    name: str
    port: int
    command: list[str]
    ready_path: str
    proc: subprocess.Popen[bytes] | None = None
    routes: dict[str, str] = field(default_factory=dict)  # mode -> path


#: The servers that run the project (`--variant` adds the second): same raw topic, both
#: compared with the naive handler.
PROJECT_SERVERS = ("project", "variant")


def servers(args: argparse.Namespace) -> list[Server]:
    uvicorn = [sys.executable, "-m", "uvicorn", "--no-access-log", "--log-level", "warning"]
    found = [
        Server(
            "project",
            args.port,
            [sys.executable, "-m", "deploy.cli", "ingress", "--workers", str(args.workers)],
            "/readyz",
            routes={"generic": "/webhooks/generic", "twilio": "/webhooks/twilio"},
        ),
        Server(  # the project again, with `--variant` settings on top: an A/B in one run
            "variant",
            args.port + 3,
            [sys.executable, "-m", "deploy.cli", "ingress", "--workers", str(args.workers)],
            "/readyz",
            routes={"generic": "/webhooks/generic", "twilio": "/webhooks/twilio"},
        ),
        Server(
            "naive",
            args.port + 1,
            [*uvicorn, "bench.naive_app:app", "--port", str(args.port + 1)],
            "/webhooks/generic",
            routes={"generic": "/webhooks/generic", "twilio": "/webhooks/twilio"},
        ),
        Server(
            "bare",
            args.port + 2,
            [*uvicorn, "bench.bare_app:app", "--port", str(args.port + 2)],
            "/bare",
            routes={"bare": "/bare"},
        ),
    ]
    wanted = set(args.only or ("project", "naive", "bare"))
    if args.variant:
        wanted.add("variant")
    return [s for s in found if s.name in wanted]


def _setting(text: str) -> tuple[str, str]:
    """`DLR_NAME=VALUE` of --project-env, checked when the arguments are parsed."""
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("DLR_"):
        raise argparse.ArgumentTypeError(f"expected DLR_NAME=VALUE, got {text!r}")
    return name, value


def run_load(
    loadgen: Path,
    url: str,
    mode: str,
    secret: str,
    seconds: int,
    connections: int,
    server_pid: int,
    broker_pid: int | None = None,
    loadgen_cpus: set[int] | None = None,
) -> dict[str, Any]:
    print(f"[bench] {mode}: {connections} connections for {seconds}s -> {url}", flush=True)
    server_before = tree_cpu_s(server_pid)
    broker_before = cpu_s(broker_pid)[0] if broker_pid else 0.0
    command = [
        str(loadgen),
        *("-url", url, "-mode", mode, "-secret", secret),
        *("-c", str(connections), "-d", f"{seconds}s"),
    ]
    if loadgen_cpus:
        command = ["taskset", "-c", ",".join(map(str, sorted(loadgen_cpus))), *command]
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout)
    server = tree_cpu_s(server_pid) - server_before
    broker = (cpu_s(broker_pid)[0] - broker_before) if broker_pid else 0.0
    requests = max(result["requests"], 1)
    result["cpu_share"] = server / result["seconds"]
    result["cpu_us_per_request"] = server / requests * 1e6
    result["broker_share"] = broker / result["seconds"]
    result["broker_us_per_request"] = broker / requests * 1e6
    print(
        f"[bench]   {result['rps']:.0f} req/s  p50 {result['p50_ms']:.2f} ms  "
        f"p99 {result['p99_ms']:.2f} ms  status {result['status']}  server CPU "
        f"{result['cpu_share']:.0%} of a core, {result['cpu_us_per_request']:.0f} us/request; "
        f"broker {result['broker_share']:.0%}, {result['broker_us_per_request']:.0f} us/request",
        flush=True,
    )
    return result


def stack() -> str:
    """Which event loop and HTTP parser uvicorn picks here ("auto" prefers the C ones)."""
    found = [
        module if importlib.util.find_spec(module) else f"{fallback} ({module} not installed)"
        for module, fallback in (("uvloop", "asyncio loop"), ("httptools", "h11 parser"))
    ]
    return ", ".join(found)


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def count_records(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()  # the consumer tracks no topic
        partitions = cluster.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        ends = await consumer.end_offsets(tps)
        return sum(ends.values())
    finally:
        with contextlib.suppress(asyncio.CancelledError):  # aiokafka: group-less consumer close
            await consumer.stop()


def table(results: dict[str, list[dict[str, Any]]]) -> None:
    """Medians over the rounds; each project route against the naive handler's same route.

    "vs naive" is the ratio of requests per second; "CPU vs naive" the naive handler's server
    CPU per request over the project's, what the req/s ratio becomes once a core is the limit.
    """

    def median(label: str, key: str) -> float:
        return float(statistics.median(r[key] for r in results[label]))

    def naive(label: str) -> str | None:
        server, _, mode = label.partition(" ")
        other = f"naive {mode}" if server in PROJECT_SERVERS else None
        return other if other in results else None

    bare = median("bare", "rps") if "bare" in results else None
    print(
        "endpoint           req/s   p50 ms   p99 ms  CPU us/req  broker us/req"
        "  vs naive  CPU vs naive  vs bare"
    )
    for label in results:
        rps, cpu = median(label, "rps"), median(label, "cpu_us_per_request")
        other = naive(label)
        versus = (
            f"{rps / median(other, 'rps'):>9.2f}x"
            f"{median(other, 'cpu_us_per_request') / cpu:>13.2f}x"
            if other
            else " " * 24
        )
        print(
            f"{label:<16}{rps:>8.0f}{median(label, 'p50_ms'):>9.2f}{median(label, 'p99_ms'):>9.2f}"
            f"{cpu:>12.0f}{median(label, 'broker_us_per_request'):>15.0f}{versus}"
            + (f"{rps / bare:>9.0%}" if bare else "")
        )
    if max(len(r) for r in results.values()) > 1:
        print("\nper round, against the naive handler in the same round (req/s, CPU per request):")
        for label in results:
            other = naive(label)
            if other:
                rounds = [
                    f"{p['rps'] / n['rps']:.2f}x/"
                    f"{n['cpu_us_per_request'] / p['cpu_us_per_request']:.2f}x"
                    for p, n in zip(results[label], results[other], strict=True)
                ]
                print(f"  {label:<16}" + "  ".join(rounds))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=8, help="seconds per route, unmeasured")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--port", type=int, default=18080, help="four ports from here")
    parser.add_argument("--workers", type=int, default=1, help="dlr ingress --workers N")
    parser.add_argument(
        "--only", nargs="*", choices=("project", "naive", "bare"), help="servers to run"
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin servers, load generator and broker"
    )
    parser.add_argument(
        "--project-env",
        action="append",
        default=[],
        type=_setting,
        metavar="DLR_NAME=VALUE",
        help="a setting for the project's server only (e.g. DLR_PRODUCE_LINGER_MS=1)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        type=_setting,
        metavar="DLR_NAME=VALUE",
        help="run a second project server with this setting too (the 'variant' rows), "
        "measured in the same rounds as the project (e.g. DLR_PRODUCE_REPORTS=poll)",
    )
    args = parser.parse_args()
    with local_broker() as base:
        return measure(args, base)


def measure(args: argparse.Namespace, base: Settings) -> int:
    """Start the servers, drive each route for `args.rounds`, print the table, check Kafka."""
    pid_file = kafka.pid_file(base)
    broker_pid = None if base.kafka_bootstrap else int(pid_file.read_text().split()[0])
    run = uuid.uuid4().hex[:8]
    settings = base.model_copy(update={"raw_topic": f"bench.raw.{run}"})
    naive_topic = f"bench.naive.{run}"
    asyncio.run(ensure_topics(settings))
    asyncio.run(create_topic(settings.bootstrap, naive_topic, settings.topic_partitions))
    loadgen = build_loadgen()
    logs = ROOT / ".data" / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DLR_")},
        "DLR_KAFKA_BOOTSTRAP": settings.bootstrap,
        "DLR_RAW_TOPIC": settings.raw_topic,
        "DLR_GENERIC_SECRETS": GENERIC_SECRET,
        "DLR_TWILIO_SECRETS": TWILIO_TOKEN,
        "DLR_INGRESS_PORT": str(args.port),
        "DLR_LOG_LEVEL": "WARNING",
        "DLR_REPLAY_WINDOW_S": "300",
        "DLR_REQUIRE_HTTPS": "false",  # plain HTTP on loopback, as the baseline
    }
    cores = os.cpu_count() or 1
    pinned = not args.no_pin and cores >= 2
    server_cpus = {0} if pinned and args.workers == 1 else None
    other_cpus = set(range(1, cores)) if pinned else None
    broker_affinity = None
    if pinned and broker_pid:
        broker_affinity = os.sched_getaffinity(broker_pid)
        pin(broker_pid, other_cpus or set())
    results: dict[str, list[dict[str, Any]]] = {}
    running = servers(args)
    try:
        for server in running:
            server_env = dict(env)
            if server.name in PROJECT_SERVERS:
                server_env.update(args.project_env)
            if server.name == "variant":
                server_env.update(args.variant)
                server_env["DLR_INGRESS_PORT"] = str(server.port)
            if server.name == "naive":
                server_env["DLR_RAW_TOPIC"] = naive_topic
            command = server.command
            if server_cpus:
                command = ["taskset", "-c", ",".join(map(str, server_cpus)), *command]
            server.proc = serve(command, server_env, logs / f"{server.name}.log")
        project = "no project server"
        for server in running:
            wait_http(f"http://127.0.0.1:{server.port}{server.ready_path}")
            if server.name == "project":
                health = httpx.get(f"http://127.0.0.1:{server.port}/healthz").json()
                path = "compiled" if health["compiled"] else "pure Python"
                project = f"dlr ingress --workers {args.workers}, webhook path {path}"
                if args.variant:
                    changed = " ".join(f"{k}={v}" for k, v in args.variant)
                    project += f"; variant: the same with {changed}"

        def drive(server: Server, mode: str, seconds: int) -> dict[str, Any]:
            assert server.proc is not None
            url = f"http://127.0.0.1:{server.port}{server.routes[mode]}"
            return run_load(
                *(loadgen, url, mode, SECRETS[mode], seconds, args.connections),
                *(server.proc.pid, broker_pid, other_cpus),
            )

        def routes(order: list[Server]) -> list[tuple[str, Server]]:
            modes = ("generic", "twilio", "bare")
            return [(m, server) for m in modes for server in order if m in server.routes]

        if args.warmup:  # every route before any is measured: the broker's JIT warms up too
            print(f"[bench] warm-up: {args.warmup}s per route", flush=True)
            for mode, server in routes(running):
                drive(server, mode, args.warmup)
        for round_ in range(args.rounds):
            if args.rounds > 1:
                print(f"[bench] round {round_ + 1} of {args.rounds}", flush=True)
            # Odd rounds take the servers in the other order: what drifts (the broker's log,
            # the machine) falls on the project and on the naive handler alike.
            for mode, server in routes(running if round_ % 2 == 0 else running[::-1]):
                label = f"{server.name} {mode}" if mode != "bare" else "bare"
                results.setdefault(label, []).append(drive(server, mode, args.seconds))
    finally:
        for server in running:
            if server.proc is not None:
                stop(server.proc)
        if broker_pid and broker_affinity:
            pin(broker_pid, broker_affinity)
    print(f"\nuvicorn: {stack()}; {project}; ", end="")
    if pinned:
        where = "core 0" if server_cpus else "all cores"
        print(f"servers on {where}, load generator and broker on cores 1-{cores - 1}")
    else:
        print("nothing pinned")
    table(results)
    ok = True
    for name, topic in (("project", settings.raw_topic), ("naive", naive_topic)):
        writers = PROJECT_SERVERS if name == "project" else (name,)  # one raw topic
        accepted = sum(
            r["status"].get("200", 0)
            for label, rs in results.items()
            for r in rs
            if label.split(" ")[0] in writers
        )
        if not accepted:
            continue
        produced = asyncio.run(count_records(settings.bootstrap, topic))
        print(
            f"{name}: acknowledged in the measured runs {accepted}; records in Kafka "
            f"(incl. warm-up) {produced}"
        )
        if produced < accepted:
            print(f"ERROR: {name}: fewer records in Kafka than acknowledged requests")
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
