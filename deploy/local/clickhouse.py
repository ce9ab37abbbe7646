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

    dlr clickhouse start|stop|status   (the spawned child runs `... serve`)
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from xml.sax.saxutils import escape

from deploy.local._process import pid_alive, port_open, read_pid, spawn, terminate, wait_until
from deploy.settings import Settings

#: Opens the listeners, then keeps the single query (and with it the listeners) alive.
#: The output format must be TabSeparated: it becomes the server's default format, and
#: clickhouse-connect cannot read the server version in CSV.
SERVE_SQL = (
    "SYSTEM START LISTEN HTTP; "
    "SYSTEM START LISTEN TCP; "
    "SELECT sleepEachRow(1) FROM system.numbers SETTINGS max_block_size = 1 FORMAT Null"
)


def base_dir(settings: Settings) -> Path:
    """Private HOME and working directory of the server: config, log, pid file."""
    return (settings.data_dir / "clickhouse").resolve()


def data_dir(settings: Settings) -> Path:
    """Databases and tables; persists across restarts."""
    return base_dir(settings) / "data"


def pid_file(settings: Settings) -> Path:
    """Pid of the server process this launcher started (its own process group)."""
    return base_dir(settings) / "server.pid"


def log_file(settings: Settings) -> Path:
    """stdout/stderr of the server process."""
    return base_dir(settings) / "server.log"


def ping_url(settings: Settings) -> str:
    """The local server's health endpoint."""
    return f"http://{settings.clickhouse_host}:{settings.clickhouse_http_port}/ping"


def config_xml(settings: Settings) -> str:
    """clickhouse-local configuration: listen on loopback only, on the configured ports."""
    host = escape(settings.clickhouse_host)
    return (
        "<clickhouse>\n"
        f"    <listen_host>{host}</listen_host>\n"
        f"    <http_port>{int(settings.clickhouse_http_port)}</http_port>\n"
        f"    <tcp_port>{int(settings.clickhouse_tcp_port)}</tcp_port>\n"
        "    <logger>\n"
        "        <level>warning</level>\n"
        "        <console>1</console>\n"
        "    </logger>\n"
        "</clickhouse>\n"
    )


def write_config(settings: Settings) -> Path:
    """Write config.xml both where clickhouse-local looks: ./ and $HOME/.clickhouse-local/."""
    base = base_dir(settings)
    (base / ".clickhouse-local").mkdir(parents=True, exist_ok=True)
    data_dir(settings).mkdir(parents=True, exist_ok=True)
    text = config_xml(settings)
    for path in (base / "config.xml", base / ".clickhouse-local" / "config.xml"):
        path.write_text(text)
    return base / "config.xml"


def serve(settings: Settings) -> None:
    """Run the server in this process until it is killed (what the child process runs)."""
    if settings.clickhouse_host not in ("127.0.0.1", "localhost", "::1"):
        raise RuntimeError("the local ClickHouse has no password: it only binds to loopback")
    write_config(settings)
    base = base_dir(settings)
    os.environ["HOME"] = str(base)
    os.chdir(base)
    from chdb import _chdb  # ~250 MB: only in the server process, never at import

    print(
        f"[clickhouse] serving {data_dir(settings)} on http {settings.clickhouse_http_port}, "
        f"tcp {settings.clickhouse_tcp_port}",
        flush=True,
    )
    _chdb.query(SERVE_SQL, "TabSeparated", path=str(data_dir(settings)))  # type: ignore[attr-defined]
    raise RuntimeError("the ClickHouse serving query returned; the listeners are gone")


def ping(settings: Settings, timeout: float = 1.0) -> bool:
    """True when the configured local server answers `GET /ping` with `Ok.`."""
    try:
        with urllib.request.urlopen(ping_url(settings), timeout=timeout) as response:  # noqa: S310
            return bool(response.status == 200 and response.read().strip() == b"Ok.")
    except (OSError, urllib.error.URLError, ValueError):
        return False


def start(settings: Settings, timeout: float = 60.0) -> int:
    """Start the server in the background; return its pid once `/ping` answers.

    Idempotent: when a server already answers on the port, nothing is started and the pid
    from the pid file (0 when unknown, e.g. started by someone else) is returned.
    """
    if settings.clickhouse_url:
        raise RuntimeError("DLR_CLICKHOUSE_URL is set: using that server, not starting one")
    existing = read_pid(pid_file(settings))
    if ping(settings):
        pid = existing if existing and pid_alive(existing) else 0
        print(f"[clickhouse] already running (pid {pid or '?'}) on {ping_url(settings)}")
        return pid
    if port_open(settings.clickhouse_host, settings.clickhouse_http_port):
        raise RuntimeError(f"port {settings.clickhouse_http_port} is taken by another process")
    if port_open(settings.clickhouse_host, settings.clickhouse_tcp_port):
        raise RuntimeError(f"port {settings.clickhouse_tcp_port} is taken by another process")
    if existing and pid_alive(existing):
        # Ours, but not answering (still starting or wedged): it holds the data directory.
        terminate(pid_file(settings), 20.0, "[clickhouse]")
    write_config(settings)
    env = _child_env(settings)
    log = log_file(settings)
    cmd = [sys.executable, "-m", "deploy.local.clickhouse", "serve"]
    pid = spawn(cmd, log, pid_file(settings), env=env, cwd=_project_root())
    print(f"[clickhouse] starting pid {pid}, log {log}", flush=True)
    if not wait_until(
        lambda: ping(settings),
        timeout,
        "[clickhouse] waiting for /ping",
        alive=lambda: pid_alive(pid),
    ):
        stop(settings)
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"ClickHouse did not answer /ping within {timeout:.0f}s\n{tail}")
    print(f"[clickhouse] ready on {settings.clickhouse} (data {data_dir(settings)})", flush=True)
    return pid


def stop(settings: Settings, timeout: float = 20.0) -> bool:
    """SIGTERM the server's process group, SIGKILL after timeout. True if one was running."""
    return terminate(pid_file(settings), timeout, "[clickhouse]")


def status(settings: Settings) -> bool:
    """True when the local server answers `/ping`."""
    return ping(settings)


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
            "PYTHONUNBUFFERED": "1",
        }
    )
    root = str(_project_root())
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = f"{root}{os.pathsep}{path}" if path else root
    return env


if __name__ == "__main__":
    # Only the child process `start()` spawns comes here; people use `dlr clickhouse ...`.
    # The server keeps SIGTERM's default: a Python handler could never run while the
    # process sits inside the single blocking `_chdb.query` call.
    if sys.argv[1:] != ["serve"]:
        raise SystemExit("usage: python -m deploy.local.clickhouse serve (see `dlr clickhouse`)")
    serve(Settings())
