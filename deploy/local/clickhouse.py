"""Local ClickHouse 26.9: the engine shipped in `chdb-core`, served over HTTP and native TCP.

No recent ClickHouse server package is installable here, but `chdb-core==26.9.0` carries the
whole engine, including clickhouse-local's `SYSTEM START LISTEN`. `serve()` runs in a child
process: it writes a clickhouse-local `config.xml` (127.0.0.1 only) into a private HOME and
working directory under `<data_dir>/clickhouse`, then makes ONE `chdb._chdb.query` call that
opens the listeners and blocks forever (the listeners live only while that call runs, and a
second call in the same process fails). Data lives in `<data_dir>/clickhouse/data` and
survives restarts and kills; two processes can never share that directory.

Everything else talks to this server through `clickhouse-connect`, exactly as to a real
server. When `DLR_CLICKHOUSE_URL` is set the launcher must not be used: callers check
`settings.clickhouse_url` first (`start()` refuses as well).

With `--shards N` (`DLR_CLICKHOUSE_SHARDS`), N such servers form one sharded cluster
`dlr_local`: shard i listens on `clickhouse_http_port + i - 1` (HTTP) and
`clickhouse_tcp_port + i - 1` (native, which Distributed tables use between shards), keeps
its data in `<data_dir>/clickhouse/cluster-N/shard-i`, and every config lists all N in
`remote_servers`, with the macros `shard` and `replica`. The engine has no Keeper here
(Replicated tables stay read-only, ON CLUSTER is refused), so the migrations use plain
engines and run on every shard (`sinks/clickhouse/cluster.py`).

    dlr clickhouse start|stop|status [--shards N]   (the spawned child runs `... serve I`)
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

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

#: Opens the listeners, then keeps the single query (and with it the listeners) alive.
#: The output format must be TabSeparated: it becomes the server's default format, and
#: clickhouse-connect cannot read the server version in CSV.
SERVE_SQL = (
    "SYSTEM START LISTEN HTTP; "
    "SYSTEM START LISTEN TCP; "
    "SELECT sleepEachRow(1) FROM system.numbers SETTINGS max_block_size = 1 FORMAT Null"
)


@dataclass(frozen=True, slots=True)
class Shard:
    """One local server (the only one, or shard `number` of a local cluster)."""

    number: int
    http_port: int
    tcp_port: int
    base: Path


def shards(settings: Settings) -> list[Shard]:
    """Every local server, shard 1 first."""
    root = (settings.data_dir / "clickhouse").resolve()
    n = settings.clickhouse_shards
    return [
        Shard(
            number=i + 1,
            http_port=settings.clickhouse_http_port + i,
            tcp_port=settings.clickhouse_tcp_port + i,
            base=root if n == 1 else root / f"cluster-{n}" / f"shard-{i + 1}",
        )
        for i in range(n)
    ]


def _shard(settings: Settings, shard: int) -> Shard:
    return shards(settings)[shard - 1]


def base_dir(settings: Settings, shard: int = 1) -> Path:
    """Private HOME and working directory of a server: config, log, pid file."""
    return _shard(settings, shard).base


def data_dir(settings: Settings, shard: int = 1) -> Path:
    """Databases and tables; persists across restarts."""
    return base_dir(settings, shard) / "data"


def pid_file(settings: Settings, shard: int = 1) -> Path:
    """Pid of the server process this launcher started (its own process group)."""
    return base_dir(settings, shard) / "server.pid"


def log_file(settings: Settings, shard: int = 1) -> Path:
    """stdout/stderr of the server process."""
    return base_dir(settings, shard) / "server.log"


def ping_url(settings: Settings, shard: int = 1) -> str:
    """A local server's health endpoint."""
    return f"http://{settings.clickhouse_host}:{_shard(settings, shard).http_port}/ping"


def config_xml(settings: Settings, shard: int = 1) -> str:
    """clickhouse-local configuration: loopback only, the shard's ports, the local cluster."""
    host = escape(settings.clickhouse_host)
    me = _shard(settings, shard)
    cluster = ""
    if settings.clickhouse_shards > 1:
        name = escape(settings.clickhouse_cluster_name or "")
        members = "".join(
            f"<shard><replica><host>{host}</host><port>{s.tcp_port}</port></replica></shard>"
            for s in shards(settings)
        )
        cluster = (
            f"    <remote_servers><{name}>{members}</{name}></remote_servers>\n"
            f"    <macros><shard>{me.number}</shard><replica>r1</replica></macros>\n"
        )
    return (
        "<clickhouse>\n"
        f"    <listen_host>{host}</listen_host>\n"
        f"    <http_port>{int(me.http_port)}</http_port>\n"
        f"    <tcp_port>{int(me.tcp_port)}</tcp_port>\n"
        f"{cluster}"
        "    <logger>\n"
        "        <level>warning</level>\n"
        "        <console>1</console>\n"
        "    </logger>\n"
        "</clickhouse>\n"
    )


def write_config(settings: Settings, shard: int = 1) -> Path:
    """Write config.xml both where clickhouse-local looks: ./ and $HOME/.clickhouse-local/."""
    base = base_dir(settings, shard)
    (base / ".clickhouse-local").mkdir(parents=True, exist_ok=True)
    data_dir(settings, shard).mkdir(parents=True, exist_ok=True)
    text = config_xml(settings, shard)
    for path in (base / "config.xml", base / ".clickhouse-local" / "config.xml"):
        path.write_text(text)
    return base / "config.xml"


def serve(settings: Settings, shard: int = 1) -> None:
    """Run a server in this process until it is killed (what the child process runs)."""
    if settings.clickhouse_host not in ("127.0.0.1", "localhost", "::1"):
        raise RuntimeError("the local ClickHouse has no password: it only binds to loopback")
    write_config(settings, shard)
    me = _shard(settings, shard)
    os.environ["HOME"] = str(me.base)
    os.chdir(me.base)
    from chdb import _chdb  # ~250 MB: only in the server process, never at import

    print(
        f"[clickhouse] serving {data_dir(settings, shard)} on http {me.http_port}, "
        f"tcp {me.tcp_port}",
        flush=True,
    )
    _chdb.query(SERVE_SQL, "TabSeparated", path=str(data_dir(settings, shard)))  # type: ignore[attr-defined]
    raise RuntimeError("the ClickHouse serving query returned; the listeners are gone")


def ping(settings: Settings, timeout: float = 1.0, shard: int = 1) -> bool:
    """True when a local server answers `GET /ping` with `Ok.`."""
    try:
        with urllib.request.urlopen(ping_url(settings, shard), timeout=timeout) as response:  # noqa: S310
            return bool(response.status == 200 and response.read().strip() == b"Ok.")
    except (OSError, urllib.error.URLError, ValueError):
        return False


def _label(settings: Settings, shard: int) -> str:
    return "[clickhouse]" if settings.clickhouse_shards == 1 else f"[clickhouse] shard {shard}"


def _start_shard(settings: Settings, shard: int, timeout: float) -> int:
    me = _shard(settings, shard)
    label = _label(settings, shard)
    existing = read_pid(pid_file(settings, shard))
    if ping(settings, shard=shard):
        pid = existing if existing and pid_alive(existing) else 0
        print(f"{label} already running (pid {pid or '?'}) on {ping_url(settings, shard)}")
        return pid
    for port in (me.http_port, me.tcp_port):
        if port_open(settings.clickhouse_host, port):
            raise RuntimeError(f"port {port} is taken by another process")
    if existing and pid_alive(existing):
        # Ours, but not answering (still starting or wedged): it holds the data directory.
        terminate(pid_file(settings, shard), 20.0, label)
    write_config(settings, shard)
    env = _child_env(settings)
    log = log_file(settings, shard)
    cmd = [sys.executable, "-m", "deploy.local.clickhouse", "serve", str(shard)]
    pid = spawn(cmd, log, pid_file(settings, shard), env=env, cwd=_project_root())
    print(f"{label} starting pid {pid}, log {log}", flush=True)
    return pid


def start(settings: Settings, timeout: float = 60.0) -> int:
    """Start the server(s) in the background; return shard 1's pid once all answer `/ping`.

    Idempotent: when a server already answers on its port, nothing is started for it and
    the pid from its pid file (0 when unknown, e.g. started by someone else) is used.
    """
    if settings.clickhouse_url:
        raise RuntimeError("DLR_CLICKHOUSE_URL is set: using that server, not starting one")
    numbers = [s.number for s in shards(settings)]
    pids = [_start_shard(settings, n, timeout) for n in numbers]
    if not wait_until(
        lambda: all(ping(settings, shard=n) for n in numbers),
        timeout,
        "[clickhouse] waiting for /ping",
        alive=lambda: all(pid == 0 or pid_alive(pid) for pid in pids),
    ):
        tails = "\n".join(
            log_file(settings, n).read_text(errors="replace")[-2000:]
            for n in numbers
            if log_file(settings, n).exists()
        )
        stop(settings)
        raise RuntimeError(f"ClickHouse did not answer /ping within {timeout:.0f}s\n{tails}")
    where = f"data {data_dir(settings)}"
    if len(numbers) > 1:
        where = (
            f"cluster {settings.clickhouse_cluster_name} of {len(numbers)} shards: "
            + ", ".join(settings.clickhouse_nodes)
        )
    print(f"[clickhouse] ready on {settings.clickhouse} ({where})", flush=True)
    return pids[0]


def stop(settings: Settings, timeout: float = 20.0) -> bool:
    """SIGTERM each server's process group, SIGKILL after timeout. True if one was running."""
    stopped = [
        terminate(pid_file(settings, s.number), timeout, _label(settings, s.number))
        for s in shards(settings)
    ]
    return any(stopped)


def local_clusters(settings: Settings) -> list[int]:
    """Shard counts of the local servers with data under `<data>/clickhouse` (1 = one)."""
    root = (settings.data_dir / "clickhouse").resolve()
    return cluster_sizes(root, ("data", "server.pid"), settings.clickhouse_shards)


def status(settings: Settings) -> bool:
    """True when every local server answers `/ping`."""
    return all(ping(settings, shard=s.number) for s in shards(settings))


def _project_root() -> Path:
    return Path(__file__).resolve().parents[2]


def _child_env(settings: Settings) -> dict[str, str]:
    """The child rebuilds Settings from the environment, so pass this object's values down."""
    env = {k: v for k, v in os.environ.items() if k != "DLR_CLICKHOUSE_URL"}
    env.update(
        {
            "DLR_DATA_DIR": str(settings.data_dir.resolve()),
            "DLR_CLICKHOUSE_HOST": settings.clickhouse_host,
            "DLR_CLICKHOUSE_HTTP_PORT": str(settings.clickhouse_http_port),
            "DLR_CLICKHOUSE_TCP_PORT": str(settings.clickhouse_tcp_port),
            "DLR_CLICKHOUSE_SHARDS": str(settings.clickhouse_shards),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if settings.clickhouse_cluster:
        env["DLR_CLICKHOUSE_CLUSTER"] = settings.clickhouse_cluster
    root = str(_project_root())
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = f"{root}{os.pathsep}{path}" if path else root
    return env


if __name__ == "__main__":
    # Only the child process `start()` spawns comes here; people use `dlr clickhouse ...`.
    # The server keeps SIGTERM's default: a Python handler could never run while the
    # process sits inside the single blocking `_chdb.query` call.
    if sys.argv[1:2] != ["serve"] or len(sys.argv) > 3:
        raise SystemExit(
            "usage: python -m deploy.local.clickhouse serve [SHARD] (see `dlr clickhouse`)"
        )
    serve(Settings(), int(sys.argv[2]) if len(sys.argv) == 3 else 1)
