"""Local Apache Kafka 4.x: one KRaft node, or a cluster of N (`--brokers N`), on 127.0.0.1.

Jars come from Maven Central (`deploy/local/pom.xml`) into `<cache>/kafka/<version>/libs`
once; each node runs as `java kafka.Kafka server.properties` with a capped heap. Every node
is broker and controller (the controller quorum is all N nodes, so a 3-node cluster keeps
working with one node down). Node i (1-based) listens on `kafka_port + i - 1` for clients
(9092, 9093, 9094 by default) and on `kafka_controller_port + i - 1` for the quorum
(9192, 9193, 9194: not 9093, which node 2 uses). One node keeps its data in
`<data>/kafka`; a cluster of N in `<data>/kafka/cluster-N/node-i` (a different broker
count is a different cluster with its own topics). On a cluster of three or more, every
topic anyone creates defaults to replication factor `topic_replication_factor` and
`min.insync.replicas` `topic_min_insync_replicas` (3 and 2), and unclean leader election
is off. No Kafka shell scripts exist here, so this is the launcher. Unused when
`DLR_KAFKA_BOOTSTRAP` points at a real cluster. The command line is
`dlr kafka start|stop|status|fetch [--brokers N]` (deploy/cli.py).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from deploy.local._process import (
    cluster_sizes,
    pid_alive,
    port_open,
    read_pid,
    spawn,
    terminate,
    wait_until,
)
from deploy.settings import Settings

__all__ = [
    "Node",
    "data_dir",
    "fetch",
    "format_storage",
    "kill_node",
    "libs_dir",
    "local_clusters",
    "node_of_port",
    "nodes",
    "ready",
    "running_pids",
    "start",
    "start_node",
    "status",
    "stop",
    "write_config",
]

POM = Path(__file__).with_name("pom.xml")
LOG4J = Path(__file__).with_name("log4j2.properties")
MAIN_CLASS = "kafka.Kafka"


@dataclass(frozen=True, slots=True)
class Node:
    """One local KRaft node (broker + controller)."""

    id: int
    port: int
    controller_port: int
    dir: Path

    @property
    def pid_file(self) -> Path:
        """Pid of this node's process (its own process group)."""
        return self.dir / "kafka.pid"

    @property
    def log(self) -> Path:
        """stdout/stderr of this node."""
        return self.dir / "server.log"


def libs_dir(settings: Settings) -> Path:
    """Where the resolved jars for the configured version live."""
    return (settings.cache_dir / "kafka" / settings.kafka_version / "libs").resolve()


def data_dir(settings: Settings) -> Path:
    """State of the local cluster: config, KRaft metadata, topic logs, pids, server logs."""
    base = (settings.data_dir / "kafka").resolve()
    return base if settings.kafka_brokers == 1 else base / f"cluster-{settings.kafka_brokers}"


def nodes(settings: Settings) -> list[Node]:
    """Every node of the local cluster, node 1 first."""
    base = data_dir(settings)
    return [
        Node(
            id=i + 1,
            port=port,
            controller_port=settings.kafka_controller_port + i,
            dir=base if settings.kafka_brokers == 1 else base / f"node-{i + 1}",
        )
        for i, port in enumerate(settings.kafka_ports)
    ]


def node_of_port(settings: Settings, port: int) -> Node:
    """The local node whose client port is `port` (Kafka's metadata names brokers by it)."""
    for node in nodes(settings):
        if node.port == port:
            return node
    raise KeyError(f"no local broker listens on port {port}")


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


def write_config(settings: Settings, node: int = 1) -> Path:
    """server.properties of one node of the local cluster (node 1 when alone)."""
    me = nodes(settings)[node - 1]
    host = settings.kafka_host
    voters = ",".join(f"{n.id}@{host}:{n.controller_port}" for n in nodes(settings))
    brokers = settings.kafka_brokers
    # Internal topics: as replicated as the cluster allows, never more than 3 copies.
    internal_rf = min(3, brokers)
    internal_isr = 2 if internal_rf >= 3 else 1
    rf = min(settings.topic_replication_factor, brokers)
    isr = min(settings.topic_min_insync_replicas, rf)
    me.dir.mkdir(parents=True, exist_ok=True)
    config = me.dir / "server.properties"
    config.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                f"node.id={me.id}",
                f"controller.quorum.voters={voters}",
                f"listeners=PLAINTEXT://{host}:{me.port},CONTROLLER://{host}:{me.controller_port}",
                f"advertised.listeners=PLAINTEXT://{host}:{me.port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={me.dir / 'logs'}",
                f"num.partitions={settings.topic_partitions}",
                # Defaults for every topic anyone creates (faust's changelogs included).
                f"default.replication.factor={rf}",
                f"min.insync.replicas={isr}",
                "unclean.leader.election.enable=false",
                f"offsets.topic.replication.factor={internal_rf}",
                "offsets.topic.num.partitions=8",
                f"transaction.state.log.replication.factor={internal_rf}",
                f"transaction.state.log.min.isr={internal_isr}",
                f"share.coordinator.state.topic.replication.factor={internal_rf}",
                f"share.coordinator.state.topic.min.isr={internal_isr}",
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


def _java(settings: Settings, node: Node, *args: str, heap: bool = False) -> list[str]:
    libs = libs_dir(settings)
    opts = [
        f"-Dlog4j2.configurationFile={LOG4J}",
        f"-Dkafka.logs.dir={node.dir / 'logs'}",
        "-Djava.awt.headless=true",
    ]
    if heap:
        mb = settings.kafka_heap_mb
        opts += [f"-Xms{min(256, mb)}m", f"-Xmx{mb}m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20"]
    return ["java", *opts, "-cp", f"{libs}/*", *args]


def _cluster_id(settings: Settings) -> str:
    """The id every node of the local cluster is formatted with (kept in the data dir)."""
    path = data_dir(settings) / "cluster.id"
    with contextlib.suppress(OSError):
        return path.read_text().strip()
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(cluster_id)
    return cluster_id


def format_storage(settings: Settings, config: Path, node: int = 1) -> None:
    """Format a node's KRaft log dir once; later starts reuse it (data persists)."""
    me = nodes(settings)[node - 1]
    if (me.dir / "logs" / "meta.properties").exists():
        return
    cluster_id = _cluster_id(settings)
    print(f"[kafka] formatting node {me.id} storage (cluster {cluster_id}) ...")
    subprocess.run(
        _java(
            settings,
            me,
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


async def _brokers(bootstrap: str) -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await admin.start()
        return len((await admin.describe_cluster())["brokers"])
    except Exception:
        return 0
    finally:
        await admin.close()


def ready(bootstrap: str, brokers: int = 1) -> bool:
    """True when the cluster answers a metadata request naming at least `brokers` brokers."""
    listening = [
        address
        for address in bootstrap.split(",")
        if port_open(address.rpartition(":")[0], int(address.rpartition(":")[2]))
    ]
    if len(listening) < min(brokers, len(bootstrap.split(","))):
        return False
    return asyncio.run(_brokers(",".join(listening))) >= brokers


def pid_file(settings: Settings) -> Path:
    """Pid of node 1's process (the only node of a one-broker setup)."""
    return nodes(settings)[0].pid_file


def _running(node: Node) -> int | None:
    pid = read_pid(node.pid_file)
    return pid if pid and pid_alive(pid) else None


def running_pids(settings: Settings) -> list[int]:
    """Pids of the local cluster's nodes that are running (benchmarks read their CPU)."""
    return [pid for node in nodes(settings) if (pid := _running(node))]


def start_node(settings: Settings, node: int) -> int:
    """Start one node in the background (no waiting); returns its pid."""
    me = nodes(settings)[node - 1]
    pid = _running(me)
    if pid:
        return pid
    if port_open(settings.kafka_host, me.port):
        raise RuntimeError(f"port {me.port} is taken by another process")
    if port_open(settings.kafka_host, me.controller_port):
        raise RuntimeError(f"controller port {me.controller_port} is taken by another process")
    config = write_config(settings, node)
    format_storage(settings, config, node)
    pid = spawn(_java(settings, me, MAIN_CLASS, str(config), heap=True), me.log, me.pid_file)
    print(f"[kafka] starting node {me.id} (pid {pid}) on port {me.port}, log {me.log}")
    return pid


def kill_node(settings: Settings, node: int, sig: int = signal.SIGKILL) -> bool:
    """Send `sig` to one node's process group (SIGKILL: a broker crash); True if it ran."""
    me = nodes(settings)[node - 1]
    pid = _running(me)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)
    if sig == signal.SIGKILL:
        while pid_alive(pid):
            time.sleep(0.05)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    return True


def start(settings: Settings, timeout: float = 90.0) -> list[int]:
    """Start every node in the background; wait until all of them are brokers of the cluster."""
    if settings.kafka_bootstrap:
        raise RuntimeError("DLR_KAFKA_BOOTSTRAP is set: using that broker, not starting one")
    brokers = settings.kafka_brokers
    all_nodes = nodes(settings)
    running = [_running(n) for n in all_nodes]
    if all(running) and ready(settings.bootstrap, brokers):
        print(f"[kafka] already running (pids {running}) on {settings.bootstrap}")
        return [pid for pid in running if pid]
    fetch(settings)
    pids = [start_node(settings, n.id) for n in all_nodes]
    if not wait_until(
        lambda: ready(settings.bootstrap, brokers),
        timeout,
        f"[kafka] waiting for {brokers} broker{'s' if brokers > 1 else ''}",
        alive=lambda: all(pid_alive(pid) for pid in pids),
    ):
        tails = "\n".join(
            f"--- node {n.id}\n" + n.log.read_text(errors="replace")[-1500:]
            for n in all_nodes
            if n.log.exists()
        )
        stop(settings)
        raise RuntimeError(f"Kafka did not become ready within {timeout:.0f}s\n{tails}")
    kind = "KRaft node" if brokers == 1 else f"KRaft cluster of {brokers} brokers"
    print(f"[kafka] ready on {settings.bootstrap} ({kind}, Kafka {settings.kafka_version})")
    return pids


def stop(settings: Settings, timeout: float = 30.0) -> bool:
    """Stop every node cleanly (SIGTERM to all at once, SIGKILL after timeout).

    All at once: stopped one after the other, the last nodes of a cluster would wait for a
    controller quorum that is already gone. True if any node was running.
    """
    all_nodes = nodes(settings)
    if len(all_nodes) == 1:
        return terminate(all_nodes[0].pid_file, timeout, "[kafka]")
    running = [n for n in all_nodes if _running(n)]
    for node in running:
        kill_node(settings, node.id, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for node in running:
        terminate(node.pid_file, max(0.1, deadline - time.monotonic()), f"[kafka] node {node.id}")
    return bool(running)


def local_clusters(settings: Settings) -> list[int]:
    """Broker counts of the local clusters that have data under `<data>/kafka` (1 = one node)."""
    base = (settings.data_dir / "kafka").resolve()
    return cluster_sizes(base, ("logs", "kafka.pid"), settings.kafka_brokers)


def status(settings: Settings) -> bool:
    """True when the configured cluster answers with all its brokers."""
    return ready(settings.bootstrap, 1 if settings.kafka_bootstrap else settings.kafka_brokers)
