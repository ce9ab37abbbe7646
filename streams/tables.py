"""The worker's state: one record per message (current state + event keys seen).

Keyed by message id like `dlr.raw.v1`, so the table is co-partitioned with its source.
RocksDB (rocksdict) keeps it on local disk so a restart does not replay the whole
changelog; keys idle for `DLR_DEDUPE_TTL_S` (default 7 days) expire locally (RocksDB TTL)
and in the changelog (compact,delete with the same retention), so state stays bounded.
"""

from __future__ import annotations

from streams.app import app, settings

messages = app.Table(
    "dlr-messages",
    default=None,
    partitions=settings.topic_partitions,
    key_type=bytes,
    value_type=bytes,  # orjson bytes of the message record (see streams/transforms.py)
    options={
        "ttl": settings.dedupe_ttl_s,
        "block_cache_size": 32 * 1024 * 1024,
        "write_buffer_size": 16 * 1024 * 1024,
    },
    extra_topic_configs={
        "cleanup.policy": "compact,delete",
        "retention.ms": str(settings.dedupe_ttl_s * 1000),
    },
)
