"""`dlr tools fetch`: the system tools the tests and the operations side need.

- `promtool` (Debian package `prometheus`): checks and unit-tests the Prometheus rules
  of `deploy/prometheus/`;
- `chromium` and `chromedriver` (Debian `chromium`, `chromium-driver`): the headless
  browser the built-in dashboard is tested in.

Like `dlr kafka fetch` for the Kafka jars: what is on PATH is used; what is missing is
installed with apt-get when this is a Debian-like machine and we are root (CI and the
development machines are), else the command fails and says what to install. Tests never
skip for a missing tool: they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess

__all__ = ["TOOLS", "fetch", "missing"]

#: executable -> Debian package that provides it
TOOLS: dict[str, str] = {
    "promtool": "prometheus",
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
}


def missing() -> dict[str, str]:
    """The tools not on PATH, with their packages."""
    return {tool: package for tool, package in TOOLS.items() if shutil.which(tool) is None}


def fetch() -> int:
    """Install what is missing; 0 when every tool is there afterwards."""
    absent = missing()
    if not absent:
        print(f"[tools] {', '.join(sorted(TOOLS))} found", flush=True)
        return 0
    packages = sorted(set(absent.values()))
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        print(
            f"[tools] missing {', '.join(sorted(absent))}: install the packages "
            f"{' '.join(packages)} (Debian/Ubuntu: apt-get install {' '.join(packages)})",
            flush=True,
        )
        return 1
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"[tools] apt-get install {' '.join(packages)} ...", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
    done = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        check=False,
        env=env,
    )
    still = missing()
    if done.returncode != 0 or still:
        print(f"[tools] still missing: {', '.join(sorted(still)) or 'none'}", flush=True)
        return 1
    print(f"[tools] installed {' '.join(packages)}", flush=True)
    return 0
