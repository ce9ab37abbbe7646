"""Local Apache Kafka 4.x: a single KRaft node (broker + controller) on 127.0.0.1.

Jars come from Maven Central (`deploy/local/pom.xml`) into `<cache>/kafka/<version>/libs`
once; the broker runs as `java kafka.Kafka server.properties` with a capped heap; data
lives in `<data>/kafka`. No Kafka shell scripts exist here, so this is the launcher.
Unused when `DLR_KAFKA_BOOTSTRAP` points at a real cluster. The command line is
`dlr kafka start|stop|status|fetch` (deploy/cli.py).
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from deploy.local._process import (
    pid_alive,
    port_open,
    read_pid,
    spawn,
    terminate,
    wait_until,
)
from deploy.settings import Settings

POM = Path(__file__).with_name("pom.xml")
LOG4J = Path(__file__).with_name("log4j2.properties")
MAIN_CLASS = "kafka.Kafka"


def libs_dir(settings: Settings) -> Path:
    """Where the resolved jars for the configured version live."""
    return (settings.cache_dir / "kafka" / settings.kafka_version / "libs").resolve()


def data_dir(settings: Settings) -> Path:
    """Broker state: config, KRaft metadata, topic logs, pid and server log."""
    return (settings.data_dir / "kafka").resolve()


def fetch(settings: Settings) -> Path:
    """Resolve Kafka and its runtime dependencies from Maven Central (once, atomically)."""
    libs = libs_dir(settings)
    marker = libs / f"kafka_2.13-{settings.kafka_version}.jar"
    if marker.exists():
        return libs
    if shutil.which("mvn") is None:
        raise RuntimeError("Maven (mvn) is required to fetch the Kafka jars")
    tmp = libs.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"[kafka] fetching Apache Kafka {settings.kafka_version} jars from Maven Central ...")
    started = time.monotonic()
    cmd = [
        "mvn",
        "-B",
        "--no-transfer-progress",
        "-f",
        str(POM),
        f"-Dkafka.version={settings.kafka_version}",
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={tmp}",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # progress: Maven's own per-artifact lines
        if "Copying" in line or "ERROR" in line or "BUILD" in line:
            print(f"[kafka]   {line.strip()[:120]}")
    if proc.wait() != 0 or not (tmp / marker.name).exists():
        raise RuntimeError("Maven could not resolve the Kafka jars (see output above)")
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    print(
        f"[kafka] {len(list(libs.glob('*.jar')))} jars ready in {time.monotonic() - started:.0f}s"
    )
    return libs


def write_config(settings: Settings) -> Path:
    """server.properties for one combined KRaft node listening on the configured host."""
    base = data_dir(settings)
    base.mkdir(parents=True, exist_ok=True)
    host, port, cport = settings.kafka_host, settings.kafka_port, settings.kafka_controller_port
    config = base / "server.properties"
    config.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@{host}:{cport}",
                f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
                f"advertised.listeners=PLAINTEXT://{host}:{port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={base / 'logs'}",
                f"num.partitions={settings.topic_partitions}",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=8",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "num.network.threads=2",
                "num.io.threads=4",
                "log.retention.hours=168",
                "log.segment.bytes=134217728",
                "",
            ]
        )
    )
    return config


def _java(settings: Settings, *args: str, heap: bool = False) -> list[str]:
    libs = libs_dir(settings)
    opts = [
        f"-Dlog4j2.configurationFile={LOG4J}",
        f"-Dkafka.logs.dir={data_dir(settings) / 'logs'}",
        "-Djava.awt.headless=true",
    ]
    if heap:
        mb = settings.kafka_heap_mb
        opts += [f"-Xms{min(256, mb)}m", f"-Xmx{mb}m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20"]
    return ["java", *opts, "-cp", f"{libs}/*", *args]


def format_storage(settings: Settings, config: Path) -> None:
    """Format the KRaft log dir once; later starts reuse it (data persists)."""
    if (data_dir(settings) / "logs" / "meta.properties").exists():
        return
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    print(f"[kafka] formatting storage (cluster {cluster_id}) ...")
    subprocess.run(
        _java(
            settings,
            "kafka.tools.StorageTool",
            "format",
            # One argument: an id that starts with "-" (1 in 64 do) is not an option.
            f"--cluster-id={cluster_id}",
            "-c",
            str(config),
            "--ignore-formatted",
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )


async def _metadata_ok(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await admin.start()
        await admin.describe_cluster()
        return True
    except Exception:
        return False
    finally:
        await admin.close()


def ready(bootstrap: str) -> bool:
    """True when the broker answers a metadata request."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    if not port_open(host, int(port)):
        return False
    return asyncio.run(_metadata_ok(bootstrap))


def pid_file(settings: Settings) -> Path:
    """Pid of the broker process this launcher started."""
    return data_dir(settings) / "kafka.pid"


def start(settings: Settings, timeout: float = 90.0) -> int:
    """Start the broker in the background and wait until it answers metadata requests."""
    if settings.kafka_bootstrap:
        raise RuntimeError("DLR_KAFKA_BOOTSTRAP is set: using that broker, not starting one")
    existing = read_pid(pid_file(settings))
    if existing and pid_alive(existing) and ready(settings.bootstrap):
        print(f"[kafka] already running (pid {existing}) on {settings.bootstrap}")
        return existing
    if port_open(settings.kafka_host, settings.kafka_port):
        raise RuntimeError(f"port {settings.kafka_port} is taken by another process")
    fetch(settings)
    config = write_config(settings)
    format_storage(settings, config)
    log = data_dir(settings) / "server.log"
    pid = spawn(_java(settings, MAIN_CLASS, str(config), heap=True), log, pid_file(settings))
    print(f"[kafka] starting broker pid {pid}, log {log}")
    if not wait_until(
        lambda: ready(settings.bootstrap),
        timeout,
        "[kafka] waiting for broker",
        alive=lambda: pid_alive(pid),
    ):
        stop(settings)
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"Kafka did not become ready within {timeout:.0f}s\n{tail}")
    print(f"[kafka] ready on {settings.bootstrap} (KRaft, Kafka {settings.kafka_version})")
    return pid


def stop(settings: Settings, timeout: float = 30.0) -> bool:
    """Stop the broker cleanly (SIGTERM, then SIGKILL after timeout). True if one was running."""
    return terminate(pid_file(settings), timeout, "[kafka]")


def status(settings: Settings) -> bool:
    """True when the configured broker answers metadata requests."""
    return ready(settings.bootstrap)
