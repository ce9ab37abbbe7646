"""Vendor Chart.js into `static/vendor/chart.js/` from its npm package (no CDN at run time).

    python -m ingress.dashboard.vendor [--version 4.6.1]

Runs `npm pack chart.js@<version>` (the npm registry, the package's own tarball), checks
the tarball against the integrity hash npm reports, and copies `dist/chart.umd.min.js`
and the package's licence file (MIT) as `LICENSE` next to the page. The output is
committed; this script only refreshes it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

VERSION = "4.6.1"
TARGET = Path(__file__).resolve().parent / "static" / "vendor" / "chart.js"
FILES = {"package/dist/chart.umd.min.js": "chart.umd.min.js"}
#: The licence file's name in the package starts with this (it is LICENSE plus a suffix).
LICENCE_PREFIX = "package/LICENSE"


def vendor(version: str = VERSION) -> None:
    """Fetch, verify and copy (see the module docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        packed = subprocess.run(
            ["npm", "pack", f"chart.js@{version}", "--json"],
            cwd=tmp,
            check=True,
            capture_output=True,
            text=True,
        )
        info = json.loads(packed.stdout)[0]
        tarball = Path(tmp) / info["filename"]
        algorithm, _, expected = str(info["integrity"]).partition("-")
        digest = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest())
        if digest.decode() != expected:
            raise SystemExit(f"{tarball.name}: integrity mismatch")
        with tarfile.open(tarball) as archive:
            licence = [m for m in archive.getnames() if m.startswith(LICENCE_PREFIX)]
            if len(licence) != 1:
                raise SystemExit(f"no single licence file in {tarball.name}: {licence}")
            for member, name in {**FILES, licence[0]: "LICENSE"}.items():
                source = archive.extractfile(member)
                if source is None:
                    raise SystemExit(f"{member} missing from {tarball.name}")
                TARGET.mkdir(parents=True, exist_ok=True)
                with (TARGET / name).open("wb") as out:
                    shutil.copyfileobj(source, out)
    print(f"chart.js {version} -> {TARGET}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--version", default=VERSION)
    vendor(parser.parse_args().version)
