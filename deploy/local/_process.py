"""Process plumbing for the local launchers: spawn detached, pid files, wait, stop."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def read_pid(path: Path) -> int | None:
    """The pid stored in a pid file, or None."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """True when the process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def lower_priority(nice: int) -> None:
    """Run in a new session's first process (before exec): lower its CPU priority by `nice`.

    `os.nice` orders the process among its own session's threads; on Linux with autogroup
    scheduling (`/proc/sys/kernel/sched_autogroup_enabled`) each session is also one
    scheduling group with an equal share of the CPU whatever its nice, so the session's
    group gets the value too (`/proc/self/autogroup`). Lowering needs no privilege (raising
    back does); without privilege the kernel takes one group change per 100 ms, so a busy
    answer is tried again. Where the file is missing or refuses, the process nice alone
    applies.
    """
    os.nice(nice)
    for _ in range(3):
        try:
            with open("/proc/self/autogroup", "w") as group:
                group.write(str(nice))
            return
        except BlockingIOError:
            time.sleep(0.11)
        except OSError:
            return


def spawn(
    cmd: Sequence[str],
    log: Path,
    pid_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start a process in its own session (so Ctrl-C in our terminal goes through us)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(cmd),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
            cwd=cwd,
        )
    pid_path.write_text(str(proc.pid))
    return proc.pid


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    label: str,
    alive: Callable[[], bool] | None = None,
    interval: float = 0.5,
) -> bool:
    """Poll `check` until true, printing progress every few seconds; False on timeout/death."""
    started = time.monotonic()
    last = started
    while time.monotonic() - started < timeout:
        if check():
            return True
        if alive is not None and not alive():
            print(f"{label}: process exited")
            return False
        if time.monotonic() - last >= 5:
            last = time.monotonic()
            print(f"{label} ... {last - started:.0f}s", flush=True)
        time.sleep(interval)
    return False


def terminate(pid_path: Path, timeout: float, label: str) -> bool:
    """SIGTERM the process group in a pid file, SIGKILL after timeout; remove the pid file."""
    pid = read_pid(pid_path)
    if pid is None or not pid_alive(pid):
        with contextlib.suppress(OSError):
            pid_path.unlink()
        return False
    print(f"{label} stopping pid {pid} ...", flush=True)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.2)
    if pid_alive(pid):
        print(f"{label} did not stop in {timeout:.0f}s, killing")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while pid_alive(pid):
            time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    with contextlib.suppress(OSError):
        pid_path.unlink()
    print(f"{label} stopped", flush=True)
    return True


def cluster_sizes(root: Path, single: Sequence[str], default: int) -> list[int]:
    """Node counts of the local clusters kept under `root`: 1 when one of the `single`
    node's files exists there, N for each `cluster-N/`; `[default]` when none has data."""
    found = [1] if any((root / name).exists() for name in single) else []
    for path in sorted(root.glob("cluster-*")):
        with contextlib.suppress(ValueError):
            found.append(int(path.name.removeprefix("cluster-")))
    return found or [default]
