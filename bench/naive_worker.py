"""Baseline for `bench.streams`: the worker's decision in faust as its documentation shows it.

The same pure `streams.transforms.process` (dedupe, mapping, state machine, outputs) in a
faust agent written with the public API only: `Table.__getitem__`/`__setitem__`,
`Topic.send`, faust's stock consumer loop, sensors and monitor. This is what a team would
write first; `bench.streams` runs it over the same backlog as `dlr worker` to show what
`streams/_faust.py` buys.

    python -m bench.naive_worker     (DLR_* settings as for `dlr worker`)
"""

from __future__ import annotations

import time
from typing import Any

import faust
import orjson

from streams.settings import WorkerSettings
from streams.transforms import Config, process


def build(settings: WorkerSettings) -> faust.App:
    """A faust app with one agent doing what the lifecycle agent does, the documented way."""
    app = faust.App(
        settings.worker_id,
        autodiscover=False,
        broker=f"kafka://{settings.bootstrap}",
        store="rocksdb://",
        datadir=str((settings.data_dir / "naive-streams").resolve()),
        topic_partitions=settings.topic_partitions,
        consumer_auto_offset_reset="earliest",
        web_port=settings.worker_web_port,
        web_in_thread=False,
        key_serializer="raw",
        value_serializer="raw",
    )

    def topic(name: str) -> Any:
        return app.topic(name, key_type=bytes, value_type=bytes)

    raw = topic(settings.raw_topic)
    outputs = {
        "status": topic(settings.status_topic),
        "deadletter": topic(settings.deadletter_topic),
        "actions": topic(settings.actions_topic),
        "suppressions": topic(settings.suppressions_topic),
    }
    table = app.Table(
        "naive-messages",
        default=None,
        partitions=settings.topic_partitions,
        key_type=bytes,
        value_type=bytes,
    )
    config = Config(fallback_campaigns=settings.fallback_campaign_set, salt=settings.pii_salt)

    @app.agent(raw)
    async def lifecycle(stream: Any) -> None:
        async for event in stream.events():
            key: bytes | None = event.key
            stored = table.get(key) if key else None
            message = event.message
            out = process(
                event.value,
                key,
                orjson.loads(stored) if stored else None,
                message.partition,
                message.offset,
                time.time(),
                config,
            )
            for name, pairs in (
                ("status", out.status),
                ("deadletter", out.deadletter),
                ("actions", out.actions),
                ("suppressions", out.suppressions),
            ):
                for k, v in pairs:
                    await outputs[name].send(key=k, value=v)
            if out.store is not None and key:
                table[key] = orjson.dumps(out.store)

    return app


def main() -> None:
    """Run the baseline worker in the foreground."""
    faust.Worker(build(WorkerSettings()), loglevel="warn").execute_from_commandline()


if __name__ == "__main__":
    main()
