"""Producer benchmark (not a test): CPU per acknowledged record, ours next to aiokafka's.

64 concurrent senders each produce one record (key "generic:<unique id>") and wait for
the broker's acknowledgement (acks=all), like 64 webhook requests: through the ingress's
`RawProducer` (librdkafka) and through aiokafka's `send_and_wait` (what the naive handler
does), alternately for `--rounds`. Prints records/s and the client's and the broker's CPU
per record for a raw-body-sized value (200 bytes) and an envelope-sized one (1,056 bytes,
what `/webhooks/generic` writes), which is what the envelope's size costs.

    .venv/bin/python -m bench.produce [--records 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaProducer

from bench._broker import local_broker
from bench.streams import cpu_s
from deploy.local import kafka
from deploy.settings import Settings
from deploy.topics import ensure_topics
from ingress.producer import RawProducer

Send = Callable[[bytes, bytes], Awaitable[object]]


async def drive(send: Send, records: int, value: bytes, broker_pid: int | None) -> dict[str, float]:
    ids = iter(range(records))
    prefix = f"generic:bench-{uuid.uuid4().hex[:8]}-"

    async def sender() -> None:
        for i in ids:
            await send(f"{prefix}{i}".encode(), value)

    times = os.times()
    client = times.user + times.system
    broker = cpu_s(broker_pid)[0] if broker_pid else 0.0
    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(64)))
    seconds = time.perf_counter() - started
    times = os.times()
    return {
        "rps": records / seconds,
        "client_us": (times.user + times.system - client) / records * 1e6,
        "broker_us": ((cpu_s(broker_pid)[0] - broker) / records * 1e6) if broker_pid else 0.0,
    }


async def run(
    settings: Settings, name: str, records: int, value: bytes, broker: int | None
) -> dict[str, float]:
    if name == "RawProducer (librdkafka)":
        ours = RawProducer(settings.bootstrap, settings.raw_topic, 5.0)
        await ours.start()
        try:
            await ours.send_all([(b"warm-up", value)])
            return await drive(lambda k, v: ours.send_all([(k, v)]), records, value, broker)
        finally:
            await ours.stop()
    theirs = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
    await theirs.start()
    try:
        await theirs.send_and_wait(settings.raw_topic, value, key=b"warm-up")
        return await drive(
            lambda k, v: theirs.send_and_wait(settings.raw_topic, v, key=k), records, value, broker
        )
    finally:
        await theirs.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with local_broker() as base:
        return measure(base, args.records, args.rounds)


def measure(base: Settings, records: int, rounds: int) -> int:
    """Both producers, alternately, for `rounds`; prints the per-record medians."""
    broker = None if base.kafka_bootstrap else int(kafka.pid_file(base).read_text().split()[0])
    settings = base.model_copy(update={"raw_topic": f"bench.produce.{uuid.uuid4().hex[:8]}"})
    asyncio.run(ensure_topics(settings))
    names = ("RawProducer (librdkafka)", "aiokafka send_and_wait")
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    for round_ in range(rounds):
        for size in (200, 1056):
            for name in names:
                result = asyncio.run(run(settings, name, records, b"x" * size, broker))
                results.setdefault((name, size), []).append(result)
                print(
                    f"[bench] round {round_ + 1} {name} {size} B: {result['rps']:.0f} records/s, "
                    f"client {result['client_us']:.1f} us, broker {result['broker_us']:.1f} us "
                    "CPU per record",
                    flush=True,
                )
    print(
        "\nproducer                  value   records/s  client CPU us/record  broker CPU us/record"
    )
    for (name, size), rs in results.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        print(
            f"{name:<26}{size:>5}{med['rps']:>12.0f}{med['client_us']:>22.1f}"
            f"{med['broker_us']:>22.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
