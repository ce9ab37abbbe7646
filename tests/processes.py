"""`dlr <command>` as a real process in a test: its own process group, its output in a log
file, stopped with SIGTERM (SIGKILL after 20 s) however the test ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import ROOT


def clean_env(variables: Mapping[str, str]) -> dict[str, str]:
    """This environment without any DLR_* of the caller's, plus these variables."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("DLR_")}
    return {**kept, **variables, "PYTHONUNBUFFERED": "1"}


def tail(log: Path, size: int = 3000) -> str:
    return log.read_text(errors="replace")[-size:] if log.exists() else ""


@contextmanager
def dlr(args: list[str], env: Mapping[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m deploy.cli *args`, stopped on exit (its return code is then set)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", *args],
            cwd=ROOT,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def first_answer(
    client: httpx.Client, path: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60
) -> httpx.Response:
    """GET `path` until the process answers at all (it may still be starting)."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"exited {proc.returncode}: {tail(log)}"
        try:
            return client.get(path)
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"no answer in {timeout} s: {tail(log)}"
            time.sleep(0.2)
