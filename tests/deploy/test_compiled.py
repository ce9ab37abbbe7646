"""When `dlr ingress` may serve the compiled build (`deploy/compiled.py`), on small trees.

The real build and the process it serves are tested in tests/integration/test_compiled.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import orjson
import pytest

from deploy import compiled
from ingress.providers import PROVIDERS


def _tree(root: Path) -> Path:
    for path, text in {
        "ingress/__init__.py": "",
        "ingress/webhook.py": "X = 1\n",
        "schemas/envelope.py": "V = 1\n",
    }.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def _build_of(root: Path, build: Path) -> Path:
    """A build directory whose manifest records `root` as it is now (no compiler run)."""
    build.mkdir(parents=True)
    compiled.record(build, root)
    return build


def test_a_build_is_fresh_until_a_source_changes_appears_or_goes(tmp_path: Path) -> None:
    root = _tree(tmp_path / "src")
    build = _build_of(root, tmp_path / "build")
    assert compiled.stale(root, build) is None

    (root / "ingress/webhook.py").write_text("X = 2\n")
    assert compiled.stale(root, build) == (
        "ingress/webhook.py changed since the build (`dlr compile`)"
    )
    (root / "ingress/webhook.py").write_text("X = 1\n")
    assert compiled.stale(root, build) is None

    (root / "schemas/new.py").write_text("")
    (root / "ingress/__init__.py").unlink()
    assert compiled.stale(root, build) == (
        "ingress/__init__.py and 1 more changed since the build (`dlr compile`)"
    )


def test_a_missing_or_foreign_build_is_stale(tmp_path: Path) -> None:
    root = _tree(tmp_path / "src")
    assert compiled.stale(root, tmp_path / "none") == "not built (`dlr compile`)"
    build = _build_of(root, tmp_path / "build")
    manifest = orjson.loads((build / "manifest.json").read_bytes())
    manifest["toolchain"]["python"] = "3.10.0"
    (build / "manifest.json").write_bytes(orjson.dumps(manifest))
    reason = compiled.stale(root, build)
    assert reason is not None and reason.startswith("built with {'python': '3.10.0'")


def test_every_provider_module_is_compiled() -> None:
    """A new provider is on the hot path: it joins HOT (or this test says why not)."""
    modules = {f"ingress/providers/{name}.py" for name in PROVIDERS}
    assert modules <= set(compiled.HOT)
    assert all((compiled.ROOT / path).is_file() for path in compiled.HOT)


def test_off_and_a_stale_build_serve_the_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    compiled.serve("off", ["ingress"], build=tmp_path / "none")
    assert capsys.readouterr().out == ""
    compiled.serve("auto", ["ingress"], build=tmp_path / "none")
    assert "pure-Python webhook path: build not built" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="DLR_INGRESS_COMPILED=on, but the build is not built"):
        compiled.serve("on", ["ingress"], build=tmp_path / "none")


class _Exec(Exception):
    pass


def test_a_fresh_build_runs_the_command_again_on_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = _build_of(compiled.ROOT, tmp_path / "build")
    calls: list[tuple[str, list[str], dict[str, str]]] = []

    def execve(path: str, args: list[str], env: dict[str, str]) -> None:
        calls.append((path, args, env))
        raise _Exec

    monkeypatch.setattr(os, "execve", execve)
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    monkeypatch.delenv("DLR_COMPILED_EXEC", raising=False)
    with pytest.raises(_Exec):
        compiled.serve("auto", ["ingress", "--workers", "2"], build=build)
    ((path, args, env),) = calls
    assert path == sys.executable
    assert args == [sys.executable, "-P", "-m", "deploy.cli", "ingress", "--workers", "2"]
    assert env["PYTHONPATH"] == f"{build}{os.pathsep}/elsewhere"
    # the process it becomes does not run itself again
    monkeypatch.setenv("DLR_COMPILED_EXEC", "1")
    compiled.serve("on", ["ingress"], build=build)
    assert len(calls) == 1


def test_compile_does_nothing_while_the_build_matches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make run` and `make test` call `dlr compile` every time: a matching build stays."""
    root = _tree(tmp_path / "src")
    build = _build_of(root, tmp_path / "build")
    manifest = (build / "manifest.json").read_bytes()
    assert compiled.ensure(root, build) == build
    assert (build / "manifest.json").read_bytes() == manifest
    assert "matches the sources" in capsys.readouterr().out
