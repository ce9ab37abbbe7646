"""The ingress's webhook path compiled with mypyc, and when `dlr ingress` serves it.

`dlr compile` (`make run` and `make test` call it; it does nothing while the build matches
the sources) copies `ingress/` and `schemas/` to `.build/compiled/` and compiles the modules
of `HOT` there with mypyc:
the type-annotated code that `mypy --strict` already checks, turned into C extensions
(10-20 % less CPU per webhook, README "Performance and sizing"). The build is never next
to the sources, so an edited `.py` file is never shadowed by an old extension: the build
records a SHA-256 of every source file it copied, and `dlr ingress` serves it only while
they all still match (`DLR_INGRESS_COMPILED`: `auto` serves it when fresh and says why not
otherwise, `on` refuses to start without a fresh build, `off` never serves it).

Serving it means running the process again (`exec`, same pid) with `.build/compiled` first
on `PYTHONPATH` and `-P` (no working directory on `sys.path`), so that `ingress` and
`schemas` are imported from the build and everything else from the installed project.
uvicorn's `--workers` processes inherit that path. `/healthz` says `"compiled": true` and
`dlr_ingress_compiled` is 1 when it worked.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import orjson

#: The repository (or installed tree) whose `ingress/` and `schemas/` are compiled.
ROOT = Path(__file__).resolve().parent.parent
#: Where the build goes: first on PYTHONPATH when served.
BUILD = ROOT / ".build" / "compiled"
#: Packages copied into the build (the compiled modules import only these of ours).
PACKAGES = ("ingress", "schemas")
#: Modules compiled: what a webhook runs, request by request. Not compiled: `ingress/app.py`
#: (an async generator and Starlette endpoints, which mypyc cannot compile) and
#: `ingress/providers/_contract.py` (`typing.dataclass_transform` on a compiled function
#: fails at import); their per-request share is small.
HOT = (
    "ingress/webhook.py",
    "ingress/body.py",
    "ingress/metrics.py",
    "ingress/producer.py",
    "ingress/ratelimit.py",
    "ingress/replay.py",
    "ingress/tokens.py",
    "ingress/transport.py",
    "ingress/url.py",
    "ingress/providers/_common.py",
    "ingress/providers/bandwidth.py",
    "ingress/providers/bird.py",
    "ingress/providers/generic.py",
    "ingress/providers/infobip.py",
    "ingress/providers/plivo.py",
    "ingress/providers/sinch.py",
    "ingress/providers/sns.py",
    "ingress/providers/standard.py",
    "ingress/providers/telnyx.py",
    "ingress/providers/twilio.py",
    "ingress/providers/vonage.py",
)
_MANIFEST = "manifest.json"
#: Set in the environment of the process `serve()` runs again: it never runs again twice.
_EXEC_MARK = "DLR_COMPILED_EXEC"


def sources(root: Path = ROOT) -> dict[str, str]:
    """SHA-256 of every Python file of `PACKAGES` under `root`, by relative path."""
    digests = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" not in path.parts:
                digests[path.relative_to(root).as_posix()] = hashlib.sha256(
                    path.read_bytes()
                ).hexdigest()
    return digests


def _toolchain() -> dict[str, str]:
    """What an extension is only valid for: this Python and this mypyc."""
    from importlib.metadata import version

    return {"python": platform.python_version(), "mypy": version("mypy")}


def stale(root: Path = ROOT, build: Path = BUILD) -> str | None:
    """Why the build in `build` may not be served for the sources in `root`; None: fresh."""
    try:
        manifest = orjson.loads((build / _MANIFEST).read_bytes())
    except FileNotFoundError:
        return "not built (`dlr compile`)"
    except orjson.JSONDecodeError:
        return f"{build / _MANIFEST} is not readable (`dlr compile`)"
    toolchain = _toolchain()
    if manifest.get("toolchain") != toolchain:
        return f"built with {manifest.get('toolchain')}, this is {toolchain}"
    built, now = manifest.get("sources", {}), sources(root)
    changed = sorted(p for p in built.keys() | now.keys() if built.get(p) != now.get(p))
    if changed:
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        return f"{changed[0]}{more} changed since the build (`dlr compile`)"
    return None


def record(build: Path, root: Path) -> None:
    """Write the manifest `stale()` reads: the toolchain, and the sources under `root`."""
    manifest = {"toolchain": _toolchain(), "sources": sources(root), "modules": list(HOT)}
    (build / _MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))


def ensure(root: Path = ROOT, target: Path = BUILD) -> Path:
    """The build for `root`'s sources: `target` as it is while it matches them, else built."""
    reason = stale(root, target)
    if reason is None:
        print(f"[compile] {target} matches the sources")
        return target
    print(f"[compile] {reason.removesuffix(' (`dlr compile`)')}: compiling")
    return build(root, target)


def build(root: Path = ROOT, target: Path = BUILD) -> Path:
    """Copy the packages, compile `HOT` with mypyc, record the copies' sources (a file edited
    while it was copied makes the build stale at once); the old build is replaced only when
    the new one is complete."""
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for package in PACKAGES:
        shutil.copytree(
            root / package, staging / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    command = [
        sys.executable,
        "-m",
        "mypyc",
        "--config-file",
        str(root / "pyproject.toml"),
        *HOT,
    ]
    print(f"[compile] mypyc: {len(HOT)} modules of {', '.join(PACKAGES)} (about a minute)")
    started = time.monotonic()
    log = staging / "mypyc.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=staging, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert process.stdout is not None
        done = 0
        for line in process.stdout:
            out.write(line)
            if line.startswith(b"building '"):
                done += 1
                name = line.split(b"'")[1].decode()
                print(f"[compile]   {done}/{len(HOT) + 1} {name}", flush=True)
        code = process.wait()
    if code != 0:
        tail = log.read_text(errors="replace").splitlines()[-20:]
        raise RuntimeError("mypyc failed (" + str(log) + "):\n" + "\n".join(tail))
    shutil.rmtree(staging / "build", ignore_errors=True)  # the generated C, 20+ MB
    record(staging, staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    print(f"[compile] {target} in {time.monotonic() - started:.0f}s")
    return target


def serve(mode: str, argv: list[str], build: Path = BUILD) -> None:
    """Run this command again on the build when `mode` and its freshness say so (never
    returns then); else return, having said why the pure-Python path is served."""
    if mode == "off" or os.environ.get(_EXEC_MARK):
        return
    reason = stale(build=build)
    if reason is not None:
        if mode == "on":
            raise SystemExit(f"[ingress] DLR_INGRESS_COMPILED=on, but the build is {reason}")
        print(f"[ingress] serving the pure-Python webhook path: build {reason}", flush=True)
        return
    path = os.pathsep.join(p for p in (str(build), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, _EXEC_MARK: "1"}
    print(f"[ingress] serving the compiled webhook path from {build}", flush=True)
    os.execve(sys.executable, [sys.executable, "-P", "-m", "deploy.cli", *argv], env)  # noqa: S606
