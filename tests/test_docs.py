"""The docs point at things that exist: the README's "Where is what" table names real paths,
and no file cites a document the repository does not contain."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas.providers import PROVIDERS
from tests.conftest import ROOT

#: The packages `tests/<package>/` mirrors.
PACKAGES = ("ingress", "streams", "sinks", "schemas", "deploy")
#: Placeholders of the table and what they stand for (`NNNN_<what>` names a file to add).
PLACEHOLDERS = {"<provider>": PROVIDERS, "<package>": PACKAGES}
#: Git-ignored folders every checkout creates (docs may name files in them).
LOCAL_STATE = (".data/", ".cache/", ".venv/")
#: Directories that are not the project's text (tools' caches, local state, builds).
SKIPPED_DIRS = {"__pycache__", "build", "node_modules", "results"}


def where_is_what() -> list[str]:
    """Every backticked path in the README's "Where is what" table."""
    text = (ROOT / "README.md").read_text()
    section = re.search(r"^## Where is what\n(.*?)^## ", text, re.M | re.S)
    assert section, "README.md has no '## Where is what' section"
    rows = [line for line in section.group(1).splitlines() if line.startswith("| ")]
    assert len(rows) > 20, "the table is missing or nearly empty"
    paths = []
    for row in rows:
        cell = row.rstrip(" |").rsplit(" | ", 1)[-1]
        for token in re.findall(r"`([^`]+)`", cell):
            if "/" in token and "NNNN" not in token:
                paths.append(token)
    return paths


def expand(path: str) -> list[str]:
    """A table path with its placeholders replaced by every value they stand for."""
    for placeholder, values in PLACEHOLDERS.items():
        if placeholder in path:
            return [p for value in values for p in expand(path.replace(placeholder, value))]
    return [path]


def test_where_is_what_names_only_existing_paths() -> None:
    paths = where_is_what()
    assert "streams/dedupe.py" in paths and "ingress/providers/<provider>.py" in paths
    missing = []
    for pattern in paths:
        for path in expand(pattern):
            found = list(ROOT.glob(path)) if "*" in path else [ROOT / path]
            if not found or not all(p.exists() for p in found):
                missing.append(path)
    assert missing == [], f"README 'Where is what' names paths that do not exist: {missing}"


def text_files() -> Iterator[Path]:
    """The project's files (no virtualenv, caches, local state or build output)."""
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [
            d
            for d in dirs
            if not (d.startswith(".") and d != ".ci")
            and d not in SKIPPED_DIRS
            and not d.endswith(".egg-info")
        ]
        for name in files:
            if not name.endswith((".jar", ".png", ".pyc", ".so")):
                yield Path(folder, name)


#: Documents outside this repository that once were cited (built in pieces so that this
#: file does not match itself).
FOREIGN = re.compile(
    "|".join(
        [
            r"providers" + r"\.md",
            r"streaming" + r"\.md",
            r"seed" + r"[-_ ](?:guide|sample)",
            r"\.\./" + r"shared",
            r"shared/" + r"reference",
        ]
    ),
    re.I,
)


def test_no_file_cites_a_document_the_repository_does_not_have() -> None:
    offenders = []
    files = list(text_files())
    markdown = {p.relative_to(ROOT).as_posix() for p in files if p.suffix == ".md"}
    for path in files:
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        name = path.relative_to(ROOT).as_posix()
        for number, line in enumerate(text.splitlines(), 1):
            if FOREIGN.search(line):
                offenders.append(f"{name}:{number}: {line.strip()[:100]}")
            for cited in re.findall(r"[\w./-]+\.md\b", line):
                candidates = {
                    cited,
                    (path.parent / cited).resolve().relative_to(ROOT).as_posix()
                    if (path.parent / cited).resolve().is_relative_to(ROOT)
                    else cited,
                }
                if not candidates & markdown:
                    offenders.append(f"{name}:{number}: cites {cited}, not in the repository")
    assert offenders == [], "\n".join(offenders)


@pytest.mark.parametrize("doc", ["README.md", "deploy/README.md", "sinks/clickhouse/README.md"])
def test_backticked_repository_paths_in_the_docs_exist(doc: str) -> None:
    """A doc that names `dir/file.ext` names a file that exists (stale paths are bugs)."""
    text = (ROOT / doc).read_text()
    missing = []
    for token in re.findall(r"`([\w./<>*-]+/[\w.<>*-]+\.(?:py|sql|json|md|yaml|toml))`", text):
        if "<" in token or "NNNN" in token or token.startswith(LOCAL_STATE):
            continue
        bases = (ROOT, (ROOT / doc).parent)
        if not any(any(b.glob(token)) if "*" in token else (b / token).exists() for b in bases):
            missing.append(token)
    assert missing == [], f"{doc} names files that do not exist: {missing}"
