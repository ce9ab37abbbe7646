-- Every canonical event (one row per `event_id`), the history everything else derives from.
--
-- Placeholders (filled by sinks/clickhouse/migrate.py): {db}, {retention_days}, {clear_pii_days}.
--
-- * Duplicates: the sink is at-least-once and the worker may re-emit an event (same
--   event_id, new emitted_at). ReplacingMergeTree on the sorting key (message_id, event_id)
--   collapses copies in the background; exact readers use `FINAL` or count
--   `uniqExact(event_id)`. The partition key uses received_at, which is fixed per event_id
--   (it comes from the raw record), so copies always land in the same partition and merge.
--   Identical batch retries are also dropped at insert time through the writer's
--   insert_deduplication_token (non_replicated_deduplication_window).
-- * Lookups: per message through the sorting key; per time through the monthly partition
--   and a minmax index on received_at; support lookups by the provider's id through a
--   bloom filter.
-- * Privacy: phone numbers arrive protected per DLR_PII_MODE (see rows.py); the clear copies
--   (`*_clear`, only in mode `clear`) expire after {clear_pii_days} days, rows after
--   {retention_days} days.
-- * Raw provider status, error code and error text are kept next to the canonical values.
--
-- Column order and types must match sinks/clickhouse/rows.py (a unit test checks it).
CREATE TABLE IF NOT EXISTS {db}.events
(
    event_id            String,
    message_id          String,
    provider            LowCardinality(String),
    provider_message_id String,
    state               LowCardinality(String),
    current_state       LowCardinality(String),
    previous_state      LowCardinality(Nullable(String)),
    transition          LowCardinality(String),
    is_final            Bool,
    failure_reason      LowCardinality(Nullable(String)),
    provider_status     LowCardinality(String),
    provider_error_code LowCardinality(Nullable(String)),
    provider_error_text Nullable(String),
    mapped              Bool,
    pii_mode            LowCardinality(String),
    recipient           Nullable(String),
    recipient_clear     Nullable(String) TTL toDateTime(received_at) + INTERVAL {clear_pii_days} DAY,
    sender              Nullable(String),
    sender_clear        Nullable(String) TTL toDateTime(received_at) + INTERVAL {clear_pii_days} DAY,
    carrier             LowCardinality(Nullable(String)),
    mcc                 LowCardinality(Nullable(String)),
    mnc                 LowCardinality(Nullable(String)),
    country             LowCardinality(Nullable(String)),
    region              LowCardinality(Nullable(String)),
    campaign            LowCardinality(Nullable(String)),
    tenant              LowCardinality(Nullable(String)),
    client_ref          Nullable(String),
    segments            Nullable(UInt16),
    price               Nullable(Float64),
    currency            LowCardinality(Nullable(String)),
    sequence            Nullable(Int64),
    provider_timestamp  Nullable(DateTime64(3, 'UTC')),
    received_at         DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    emitted_at          DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    raw_sha256          String,
    schema_version      UInt16,
    inserted_at         DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX received_at_minmax received_at TYPE minmax GRANULARITY 1,
    INDEX provider_message_id_bloom provider_message_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(emitted_at)
PARTITION BY toYYYYMM(received_at)
ORDER BY (message_id, event_id)
TTL toDateTime(received_at) + INTERVAL {retention_days} DAY DELETE
SETTINGS non_replicated_deduplication_window = 1000;
