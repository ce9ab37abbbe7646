"""`dlr suppressions` and `dlr erase`: the privacy routes of the sender's API, at a terminal.

    dlr suppressions check +14155550100 [...]       may I send to these numbers?
    dlr suppressions add +14155550100 --reason R     suppress (actor: cli:<user>[/--actor])
    dlr suppressions remove +14155550100             allow again
    dlr suppressions export [--since T] [--format jsonl|csv] [--output FILE]
    dlr erase --phone +14155550100 [--actor NAME] [--yes] [--format text|json]

No API process is needed: they talk to Kafka and ClickHouse with the code the API runs
(`ingress/api/suppressions.py`, `ingress/api/erasure.py`). `check` reads each number's
entry from its partition of `dlr.suppressions.v1` only. Numbers are normalised to E.164
first, as the API does. Exit status: 0 done (check: none suppressed), 1 a number is
suppressed (check) or Kafka / ClickHouse failed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, TextIO

import orjson

from deploy.settings import Settings
from ingress.api import erasure
from ingress.api.privacy import csv_header, csv_line, export_row, parse_since
from ingress.api.suppressions import export, produce_entries, read_entry
from schemas.phone import e164, number_hash
from schemas.suppressions import SuppressionEntry

__all__ = ["add_erase_arguments", "add_suppression_arguments", "run_erase", "run_suppressions"]


def add_suppression_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `dlr suppressions`."""
    parser.add_argument("action", choices=["check", "add", "remove", "export"])
    parser.add_argument("numbers", nargs="*", help="phone numbers with their country code")
    parser.add_argument("--reason", help="add: default manual; remove: default removed")
    parser.add_argument("--actor", help="who asks (recorded after cli:<user>/)")
    parser.add_argument("--since", help="export: RFC 3339 time or unix seconds")
    parser.add_argument("--format", default=None, choices=["text", "json", "jsonl", "csv"])
    parser.add_argument("--output", help="export: write here instead of stdout")


def add_erase_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `dlr erase`."""
    parser.add_argument("--phone", required=True, help="the number, with its country code")
    parser.add_argument("--actor", help="who asks (recorded after cli:<user>/)")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--format", default="text", choices=["text", "json"])


def _numbers(texts: list[str]) -> list[str] | None:
    out = []
    for text in texts:
        number = e164(text)
        if number is None:
            print(f"not a phone number with its country code: {text!r}", file=sys.stderr)
            return None
        out.append(number)
    return out


def _check(settings: Settings, numbers: list[str], fmt: str, out: TextIO) -> int:
    async def entries() -> list[SuppressionEntry | None]:
        hashes = [number_hash(n, settings.pii_salt) for n in numbers]
        return await asyncio.gather(*(read_entry(settings, h) for h in hashes))

    found = asyncio.run(entries())
    answers: list[dict[str, Any]] = []
    for number, entry in zip(numbers, found, strict=True):
        answer: dict[str, Any] = {"number": number, "suppressed": bool(entry and entry.suppressed)}
        if entry is not None and entry.suppressed:
            answer |= {"reason": entry.reason, "source": entry.source, "since": entry.since}
        answers.append(answer)
    for answer in answers:
        if fmt == "json":
            out.write(orjson.dumps(answer).decode() + "\n")
        elif answer["suppressed"]:
            out.write(
                f"{answer['number']}  SUPPRESSED  reason {answer['reason']}, "
                f"source {answer['source']}, since {answer['since']}\n"
            )
        else:
            out.write(f"{answer['number']}  may be sent to\n")
    return 1 if any(a["suppressed"] for a in answers) else 0


def _change(settings: Settings, numbers: list[str], suppressed: bool, args: Any) -> int:
    reason = args.reason or ("manual" if suppressed else "removed")
    actor = erasure.cli_actor(args.actor)
    entries = [
        SuppressionEntry.now(
            number_hash=number_hash(n, settings.pii_salt),
            number=n,
            suppressed=suppressed,
            reason=reason,
            source="cli",
            actor=actor,
        )
        for n in numbers
    ]
    asyncio.run(produce_entries(settings, [(e.key(), e.to_json()) for e in entries]))
    verb = "suppressed" if suppressed else "allowed again"
    for entry in entries:
        print(f"{entry.number}  {verb} (reason {reason}, actor {actor})")
    return 0


def _export(settings: Settings, since: str | None, fmt: str, out: TextIO) -> int:
    when = parse_since(since)

    async def write() -> int:
        count = 0
        if fmt == "csv":
            out.write(csv_header())
        async for hashed, entry in export(settings, when):
            row = export_row(hashed, entry)
            out.write(csv_line(row) if fmt == "csv" else orjson.dumps(row).decode() + "\n")
            count += 1
            if count % 10000 == 0:
                print(f"[export] {count} entries ...", file=sys.stderr, flush=True)
        return count

    count = asyncio.run(write())
    print(f"[export] {count} entries", file=sys.stderr)
    return 0


def run_suppressions(settings: Settings, args: argparse.Namespace) -> int:
    """`dlr suppressions ...`."""
    if args.action == "export":
        if args.numbers:
            print("export takes no numbers", file=sys.stderr)
            return 2
        fmt = args.format or "jsonl"
        if fmt not in ("jsonl", "csv"):
            print("export: --format jsonl or csv", file=sys.stderr)
            return 2
        if args.output:
            with open(args.output, "w", newline="") as out:
                return _export(settings, args.since, fmt, out)
        return _export(settings, args.since, fmt, sys.stdout)
    numbers = _numbers(args.numbers)
    if not numbers:
        if numbers is not None:
            print(f"{args.action}: give at least one number", file=sys.stderr)
        return 2
    if args.action == "check":
        return _check(settings, numbers, args.format or "text", sys.stdout)
    return _change(settings, numbers, args.action == "add", args)


def run_erase(settings: Settings, args: argparse.Namespace) -> int:
    """`dlr erase --phone ...`: erase, print what was done and what stays."""
    number = e164(args.phone)
    if number is None:
        print(f"not a phone number with its country code: {args.phone!r}", file=sys.stderr)
        return 2
    if not args.yes and sys.stdin.isatty():
        typed = input(f"erase every trace of {number}? type the number again: ")
        if e164(typed) != number:
            print("not confirmed; nothing done", file=sys.stderr)
            return 2
    report = asyncio.run(
        erasure.erase(
            settings,
            number,
            actor=erasure.cli_actor(args.actor),
            source="cli",
            current=lambda hashed: read_entry(settings, hashed),
            progress=lambda line: print(f"[erase] {line}", file=sys.stderr, flush=True),
        )
    )
    if args.format == "json":
        print(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        print("\n".join(report.lines()))
    return 0 if report.remaining == 0 else 1
