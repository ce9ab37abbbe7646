"""deploy/prometheus/: promtool checks the rules and runs their unit tests (tests.yml).

promtool comes from `dlr tools fetch` (Debian package `prometheus`), which `make test`
runs first: a missing promtool fails here, it never skips. The rules may only use
metrics the services export, and every runbook link must lead to a section of
deploy/README.md.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.test_manifests import exported_metric_names

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"


def promtool(*args: str) -> str:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: run `dlr tools fetch` (make test does)"
    done = subprocess.run([tool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_promtool_checks_the_rules_and_their_unit_tests_pass() -> None:
    assert "SUCCESS" in promtool("check", "rules", "rules.yml")
    assert "SUCCESS" in promtool("test", "rules", "tests.yml")


def test_every_alert_is_tested_and_has_summary_severity_and_runbook() -> None:
    tests = (PROMETHEUS / "tests.yml").read_text()
    alerts = [r for r in rules() if "alert" in r]
    assert len(alerts) >= 8
    anchors = {
        re.sub(r"[^a-z0-9_ -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in (ROOT / "deploy" / "README.md").read_text().splitlines()
        if line.startswith("#")
    }
    for rule in alerts:
        name = rule["alert"]
        assert re.fullmatch(r"Dlr[A-Z][A-Za-z]+", name), name
        assert f"alertname: {name}" in tests, f"{name} has no promtool unit test"
        assert rule["labels"]["severity"] in ("page", "ticket"), name
        assert rule["annotations"]["summary"], name
        page, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert page == "deploy/README.md" and anchor in anchors, f"{name}: runbook {anchor}"


def test_rules_use_only_metrics_the_services_export() -> None:
    known = exported_metric_names()
    recorded = {r["record"] for r in rules() if "record" in r}
    for rule in rules():
        for name in re.findall(r"(?<![:\w])(dlr_[a-z0-9_]+)(?![:\w])", rule["expr"]):
            assert name in known, f"{rule.get('record') or rule.get('alert')}: {name}"
        for name in re.findall(r"\b([a-z_]+:dlr_[a-z0-9_]+:[a-z0-9_]+)\b", rule["expr"]):
            assert name in recorded, name
