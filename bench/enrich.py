"""Enrichment micro-benchmark (not a test): CPU per number of `streams.enrich.enrich` next to
plain libphonenumber, in one run.

    .venv/bin/python -m bench.enrich [--numbers 20000]

Numbers are random in 16 real mobile ranges of 8 countries (bench/streams.py's). Rows:
- `phonenumbers.parse`: the least any use of libphonenumber costs (baseline);
- `naive`: parse + region + type + carrier + geocoder per number, what one would write
  without a cache (the same facts the enrichment gives);
- `enrich, new range each time`: the worker's cost when a number's range is not cached;
- `enrich, per report`: a message's reports repeat its number (4 reports per message, as
  in bench.streams): one new range then three cached lookups;
- `enrich, cached`: a number seen before.
CPU time (process_time), so a busy machine changes the figures less than wall time would.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

import phonenumbers
from phonenumbers import carrier, geocoder

from bench.streams import RANGES
from streams import enrich as enrichment


def numbers(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        prefix, digits = rng.choice(RANGES)
        rest = digits - len(prefix)
        first = str(rng.randrange(2, 10)) if prefix.startswith("1") else ""
        tail = f"{rng.randrange(10**rest):0{rest}d}"
        out.append(f"+{prefix}{first}{tail[len(first) :]}")
    return out


def naive(number: str) -> tuple[Any, ...]:
    parsed = phonenumbers.parse(number)
    return (
        phonenumbers.region_code_for_number(parsed),
        phonenumbers.number_type(parsed),
        carrier.name_for_number(parsed, "en"),
        geocoder.description_for_number(parsed, "en"),
    )


def per_number(work: Callable[[str], object], items: Iterable[str], count: int) -> float:
    """CPU microseconds per call."""
    started = time.process_time()
    for item in items:
        work(item)
    return (time.process_time() - started) / count * 1e6


def fresh() -> None:
    """Empty the enrichment's caches (each row starts cold)."""
    enrichment.clear_caches()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--numbers", type=int, default=20_000)
    args = parser.parse_args()
    n = args.numbers
    print("[bench] loading libphonenumber data and the MCC/MNC table ...", flush=True)
    started = time.process_time()
    enrichment.warm()
    print(f"[bench] warm-up {time.process_time() - started:.2f} s CPU (once per worker)")
    items = numbers(n, seed=1)
    for item in numbers(2000, seed=2):  # libphonenumber compiles its patterns on first use
        naive(item)
    rows: list[tuple[str, float]] = []
    rows.append(("phonenumbers.parse (baseline)", per_number(phonenumbers.parse, items, n)))
    rows.append(("naive libphonenumber, no cache", per_number(naive, items, n)))
    fresh()
    rows.append(("enrich, new range each time", per_number(enrichment.enrich, items, n)))
    fresh()
    reports = [item for item in items for _ in range(4)]
    rows.append(("enrich, per report (4/message)", per_number(enrichment.enrich, reports, 4 * n)))
    rows.append(("enrich, cached", per_number(enrichment.enrich, items, n)))
    base = rows[0][1]
    print(f"\n{'CPU per number':<34}{'us':>8}{'x parse':>10}")
    for name, us in rows:
        print(f"{name:<34}{us:>8.1f}{us / base:>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
