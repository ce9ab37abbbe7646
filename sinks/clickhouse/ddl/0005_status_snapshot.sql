-- One row per message, the rows of {db}.message_status materialized: what the report
-- queries (sinks/clickhouse/queries/) read, so they scan only their window instead of
-- grouping the whole {db}.messages table by message_id on every call.
--
-- Filled by a REFRESHABLE materialized view that recomputes it from {db}.message_status
-- every minute and swaps it in atomically (readers see the old or the new copy, never a
-- half). The snapshot is therefore up to one minute (plus the refresh time) behind; callers
-- that need exact-now numbers force a refresh first (sinks/clickhouse/report.py `refresh()`,
-- and `exact=True`, the default, does so only when the snapshot is behind).
--
-- `watermark` (the same in every row of one refresh) is the highest insert block number
-- among the active parts of {db}.messages when the refresh started: every row inserted
-- before has a block number <= watermark. Merges keep block numbers, so "the snapshot is
-- behind" is exactly "some active part of {db}.messages has max_block_number > watermark",
-- a question system.parts answers in a millisecond.
--
-- Sorted by first_event_at (every report filters a window of it), low-cardinality
-- dimensions as LowCardinality.
CREATE TABLE IF NOT EXISTS {db}.status_snapshot
(
    message_id          String,
    provider            LowCardinality(String),
    provider_message_id String,
    current_state       LowCardinality(String),
    is_attempt          Bool,
    is_final            Bool,
    failure_reason      LowCardinality(Nullable(String)),
    provider_status     LowCardinality(String),
    provider_error_code LowCardinality(Nullable(String)),
    provider_error_text Nullable(String),
    carrier             LowCardinality(Nullable(String)),
    mcc                 LowCardinality(Nullable(String)),
    mnc                 LowCardinality(Nullable(String)),
    country             LowCardinality(Nullable(String)),
    region              LowCardinality(Nullable(String)),
    campaign            LowCardinality(Nullable(String)),
    tenant              LowCardinality(Nullable(String)),
    client_ref          Nullable(String),
    first_event_at      DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    last_event_at       DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    submitted_at        Nullable(DateTime64(3, 'UTC')),
    sent_at             Nullable(DateTime64(3, 'UTC')),
    delivered_at        Nullable(DateTime64(3, 'UTC')),
    time_to_deliver_s   Nullable(Float64),
    watermark           UInt64
)
ENGINE = MergeTree
ORDER BY (first_event_at, message_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.status_snapshot_mv
REFRESH EVERY 1 MINUTE
TO {db}.status_snapshot AS
SELECT
    message_id,
    provider,
    provider_message_id,
    current_state,
    is_attempt,
    is_final,
    failure_reason,
    provider_status,
    provider_error_code,
    provider_error_text,
    carrier,
    mcc,
    mnc,
    country,
    region,
    campaign,
    tenant,
    client_ref,
    first_event_at,
    last_event_at,
    submitted_at,
    sent_at,
    delivered_at,
    time_to_deliver_s,
    (SELECT toUInt64(max(max_block_number)) FROM system.parts
     WHERE database = '{db}' AND table = 'messages' AND active) AS watermark
FROM {db}.message_status;
