"""The Faust application of the stream worker; broker and store come from settings."""

from __future__ import annotations

from typing import Any

import faust

from deploy.settings import Settings

settings = Settings()

app = faust.App(
    settings.worker_id,
    autodiscover=False,
    broker=f"kafka://{settings.bootstrap}",
    store=settings.store,
    datadir=str((settings.data_dir / "streams").resolve()),
    topic_partitions=settings.topic_partitions,
    topic_replication_factor=1,
    processing_guarantee="at_least_once",
    consumer_auto_offset_reset="earliest",
    broker_commit_interval=1.0,
    broker_commit_every=5000,
    stream_buffer_maxsize=16384,
    stream_wait_empty=True,
    producer_acks=-1,
    producer_linger=0.005,
    producer_max_batch_size=512 * 1024,
    table_cleanup_interval=60.0,
    web_host="127.0.0.1",
    web_port=settings.worker_web_port,
    web_in_thread=False,
    key_serializer="raw",
    value_serializer="raw",
)


@app.page("/healthz")
async def healthz(web: Any, request: Any) -> Any:
    """Process up (faust answers this page only while the worker runs)."""
    return web.json({"status": "ok"})
