"""`dlr up` runs the intake below the pipeline: a real child process's nice value and
scheduling group, as the kernel reports them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deploy import cli
from deploy.settings import Settings

AUTOGROUP = Path("/proc/self/autogroup")


def _nice_of(pid: int) -> int:
    """Field 19 of /proc/<pid>/stat (readable until the child is reaped)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("nice", [0, 5])
def test_spawned_service_runs_lower_by_its_nice(tmp_path: Path, nice: int) -> None:
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    proc = cli._spawn(["topics", "--help"], {**os.environ}, tmp_path, nice)
    try:
        # Popen returns once the child has exec'd, after the priority was set.
        assert _nice_of(proc.pid) == min(19, ours + nice)
        if nice and AUTOGROUP.exists():
            group = Path(f"/proc/{proc.pid}/autogroup").read_text()
            assert group.rstrip().endswith(f"nice {nice}"), group
    finally:
        assert proc.wait(30) == 0
    assert "usage: dlr topics" in (tmp_path / "topics.log").read_text()


def test_only_the_intake_runs_lower() -> None:
    settings = Settings(up_intake_nice=7)
    lowered = {service.name: service.nice(settings) for service in cli.SERVICES}
    assert lowered == {
        "ingress": 7,
        "api": 7,
        "worker": 0,
        "sink": 0,
        "dispatch": 0,
        "alerts": 0,
        "dashboard": 0,
    }
    assert {s.nice(Settings(up_intake_nice=0)) for s in cli.SERVICES} == {0}
