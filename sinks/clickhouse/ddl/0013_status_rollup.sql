-- Reports at ten million events (sinks/clickhouse/README.md, "Rollup"): the refreshes
-- yield the CPU to the reports, and the reports read hourly aggregates.
--
-- 1. status_snapshot_mv again (ddl/0010's query unchanged) with `os_thread_priority = 19`:
--    its refresh (over a minute at ten million events, so running most of the time) runs
--    at the lowest CPU priority, and a report running meanwhile gets the cores first.
--    Dropped and re-created like ddl/0010 did (each refresh rewrites the whole snapshot,
--    nothing is lost).
-- 2. status_rollup: status_snapshot aggregated per hour of first event, in two grains:
--    `provider` rows per (provider, carrier, country, region, currency, priced) with
--    campaign NULL, and `campaign` rows per (campaign, carrier, country, region, currency,
--    priced) with provider '' (both together per hour would be nearly one row per message
--    again). A report over dimensions of one grain reads a few thousand rows for the whole
--    hours of its windows instead of every message. Exact: every column is a count, a sum
--    over the hour's rows, a min / max, an exact quantile state (quantilesExactInclusive
--    keeps every value, so merged states give the quantiles of all of them) or a map of
--    counts; the report queries (queries/*_rollup.sql) read the hours that a window
--    boundary cuts through from status_snapshot itself, so a window of any length ending
--    at any instant gives the snapshot's numbers.
--    Filled by a refreshable view that runs after each refresh of status_snapshot_mv
--    (DEPENDS ON), at the same low priority, and swaps the table in atomically like the
--    snapshot. `watermark` / `sends_watermark` are the snapshot's it was computed from
--    (the same in every row): report.py's freshness check reads them here, so "the
--    rollup is caught up" implies the snapshot is too.
--
--   currency, priced   the snapshot's currency as reported (NULL when none) and whether the
--                      message has a price (the queries map a missing currency per provider)
--   messages           rows of the snapshot (messages, registered ones included)
--   attempts           is_attempt (a final state, lifecycle.ATTEMPTS)
--   delivered .. unknown   current_state is that state
--   not_final, sent_not_final   NOT is_final; and current_state sent among those
--   unreceipted        registered messages without any receipt
--   failure_reasons    reason -> attempts not delivered ('unknown' for a NULL reason)
--   carrier_sources    carrier_source -> messages ('unrecorded' for NULL)
--   ttd_samples, ttd   delivered messages with a time to deliver, and the exact quantile
--                      state of those times
--   segments_sum, segments_reported, spend, spend_delivered, spend_not_delivered,
--   spend_pending      as cost.sql sums them (NULL when no row had a value)
--   first_seen, last_seen   min(first_event_at) / max(last_event_at) over the hour's rows
DROP VIEW IF EXISTS {db}.status_snapshot_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.status_snapshot_mv
REFRESH EVERY 1 MINUTE
TO {db}.status_snapshot AS
WITH
    (SELECT toUInt64(max(max_block_number)) FROM system.parts
     WHERE database = '{db}' AND table = 'messages' AND active) AS messages_block,
    (SELECT toUInt64(max(max_block_number)) FROM system.parts
     WHERE database = '{db}' AND table = 'sends' AND active) AS sends_block
SELECT
    m.message_id AS message_id,
    m.provider AS provider,
    m.provider_message_id AS provider_message_id,
    m.current_state AS current_state,
    m.is_attempt AS is_attempt,
    m.is_final AS is_final,
    m.failure_reason AS failure_reason,
    m.provider_status AS provider_status,
    m.provider_error_code AS provider_error_code,
    m.provider_error_text AS provider_error_text,
    m.carrier AS carrier,
    m.mcc AS mcc,
    m.mnc AS mnc,
    coalesce(m.country, s.country) AS country,
    coalesce(m.region, s.region) AS region,
    m.carrier_source AS carrier_source,
    m.line_type AS line_type,
    m.area AS area,
    coalesce(m.campaign, s.campaign) AS campaign,
    coalesce(m.tenant, s.tenant) AS tenant,
    coalesce(m.client_ref, s.client_ref) AS client_ref,
    coalesce(m.sender, s.sender) AS sender,
    m.segments AS segments,
    m.price AS price,
    m.currency AS currency,
    m.first_event_at AS first_event_at,
    m.last_event_at AS last_event_at,
    coalesce(s.submitted_at, m.submitted_at) AS submitted_at,
    m.sent_at AS sent_at,
    m.delivered_at AS delivered_at,
    if(m.delivered_at IS NULL OR coalesce(m.sent_at, s.submitted_at, m.submitted_at) IS NULL,
       NULL,
       greatest(0, dateDiff('millisecond',
                            assumeNotNull(coalesce(m.sent_at, s.submitted_at, m.submitted_at)),
                            assumeNotNull(m.delivered_at))) / 1000.
    ) AS time_to_deliver_s,
    messages_block AS watermark,
    s.message_id IS NOT NULL AS registered,
    true AS has_receipt,
    s.consent_source AS consent_source,
    s.consent_at AS consent_at,
    sends_block AS sends_watermark
FROM {db}.message_status AS m
LEFT JOIN
(
    SELECT message_id, campaign, tenant, client_ref, sender, country, region, submitted_at,
           consent_source, consent_at
    FROM {db}.sends FINAL
) AS s ON s.message_id = m.message_id
WHERE m.message_id NOT IN (SELECT part_id FROM {db}.message_parts)
UNION ALL
SELECT
    s.message_id,
    s.provider,
    s.provider_message_id,
    'registered',
    false,
    false,
    NULL,
    '',
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
    s.country,
    s.region,
    NULL,
    NULL,
    NULL,
    s.campaign,
    s.tenant,
    s.client_ref,
    s.sender,
    NULL,
    NULL,
    NULL,
    s.submitted_at,
    s.submitted_at,
    s.submitted_at,
    NULL,
    NULL,
    NULL,
    messages_block,
    true,
    false,
    s.consent_source,
    s.consent_at,
    sends_block
FROM {db}.sends AS s FINAL
WHERE s.message_id NOT IN (SELECT message_id FROM {db}.messages)
  AND s.message_id NOT IN (SELECT part_id FROM {db}.message_parts)
SETTINGS join_use_nulls = 1, os_thread_priority = 19;

CREATE TABLE IF NOT EXISTS {db}.status_rollup
(
    grain               LowCardinality(String),
    hour                DateTime('UTC'),
    provider            LowCardinality(String),
    carrier             LowCardinality(Nullable(String)),
    country             LowCardinality(Nullable(String)),
    region              LowCardinality(Nullable(String)),
    campaign            LowCardinality(Nullable(String)),
    currency            LowCardinality(Nullable(String)),
    priced              Bool,
    messages            UInt64,
    attempts            UInt64,
    delivered           UInt64,
    undelivered         UInt64,
    failed              UInt64,
    rejected            UInt64,
    expired             UInt64,
    unknown             UInt64,
    not_final           UInt64,
    sent_not_final      UInt64,
    unreceipted         UInt64,
    failure_reasons     Map(LowCardinality(String), UInt64),
    carrier_sources     Map(LowCardinality(String), UInt64),
    ttd_samples         UInt64,
    ttd                 AggregateFunction(quantilesExactInclusive(0.5, 0.9, 0.95, 0.99), Float64),
    segments_sum        Nullable(UInt64),
    segments_reported   UInt64,
    spend               Nullable(Float64),
    spend_delivered     Nullable(Float64),
    spend_not_delivered Nullable(Float64),
    spend_pending       Nullable(Float64),
    first_seen          DateTime64(3, 'UTC'),
    last_seen           DateTime64(3, 'UTC'),
    watermark           UInt64,
    sends_watermark     UInt64
)
ENGINE = MergeTree
ORDER BY (grain, hour);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.status_rollup_mv
REFRESH EVERY 1 MINUTE DEPENDS ON {db}.status_snapshot_mv
TO {db}.status_rollup AS
SELECT
    'provider' AS grain,
    toStartOfHour(first_event_at) AS hour,
    provider,
    carrier,
    country,
    region,
    CAST(NULL, 'Nullable(String)') AS campaign,
    currency,
    price IS NOT NULL AS priced,
    count() AS messages,
    countIf(is_attempt) AS attempts,
    countIf(current_state = 'delivered') AS delivered,
    countIf(current_state = 'undelivered') AS undelivered,
    countIf(current_state = 'failed') AS failed,
    countIf(current_state = 'rejected') AS rejected,
    countIf(current_state = 'expired') AS expired,
    countIf(current_state = 'unknown') AS unknown,
    countIf(NOT is_final) AS not_final,
    countIf(current_state = 'sent' AND NOT is_final) AS sent_not_final,
    countIf(registered AND NOT has_receipt) AS unreceipted,
    sumMapIf(map(ifNull(failure_reason, 'unknown'), toUInt64(1)),
             is_attempt AND current_state != 'delivered') AS failure_reasons,
    sumMap(map(ifNull(carrier_source, 'unrecorded'), toUInt64(1))) AS carrier_sources,
    countIf(time_to_deliver_s IS NOT NULL) AS ttd_samples,
    quantilesExactInclusiveStateIf(0.5, 0.9, 0.95, 0.99)(assumeNotNull(time_to_deliver_s),
             time_to_deliver_s IS NOT NULL) AS ttd,
    sum(segments) AS segments_sum,
    countIf(segments IS NOT NULL) AS segments_reported,
    sum(price) AS spend,
    sumIf(price, current_state = 'delivered') AS spend_delivered,
    sumIf(price, current_state IN ('undelivered', 'failed', 'rejected', 'expired')) AS spend_not_delivered,
    sumIf(price, NOT is_final) AS spend_pending,
    min(first_event_at) AS first_seen,
    max(last_event_at) AS last_seen,
    any(watermark) AS watermark,
    any(sends_watermark) AS sends_watermark
FROM {db}.status_snapshot
GROUP BY hour, provider, carrier, country, region, currency, priced
UNION ALL
SELECT
    'campaign' AS grain,
    toStartOfHour(first_event_at) AS hour,
    '' AS provider,
    carrier,
    country,
    region,
    campaign,
    currency,
    price IS NOT NULL AS priced,
    count() AS messages,
    countIf(is_attempt) AS attempts,
    countIf(current_state = 'delivered') AS delivered,
    countIf(current_state = 'undelivered') AS undelivered,
    countIf(current_state = 'failed') AS failed,
    countIf(current_state = 'rejected') AS rejected,
    countIf(current_state = 'expired') AS expired,
    countIf(current_state = 'unknown') AS unknown,
    countIf(NOT is_final) AS not_final,
    countIf(current_state = 'sent' AND NOT is_final) AS sent_not_final,
    countIf(registered AND NOT has_receipt) AS unreceipted,
    sumMapIf(map(ifNull(failure_reason, 'unknown'), toUInt64(1)),
             is_attempt AND current_state != 'delivered') AS failure_reasons,
    sumMap(map(ifNull(carrier_source, 'unrecorded'), toUInt64(1))) AS carrier_sources,
    countIf(time_to_deliver_s IS NOT NULL) AS ttd_samples,
    quantilesExactInclusiveStateIf(0.5, 0.9, 0.95, 0.99)(assumeNotNull(time_to_deliver_s),
             time_to_deliver_s IS NOT NULL) AS ttd,
    sum(segments) AS segments_sum,
    countIf(segments IS NOT NULL) AS segments_reported,
    sum(price) AS spend,
    sumIf(price, current_state = 'delivered') AS spend_delivered,
    sumIf(price, current_state IN ('undelivered', 'failed', 'rejected', 'expired')) AS spend_not_delivered,
    sumIf(price, NOT is_final) AS spend_pending,
    min(first_event_at) AS first_seen,
    max(last_event_at) AS last_seen,
    any(watermark) AS watermark,
    any(sends_watermark) AS sends_watermark
FROM {db}.status_snapshot
GROUP BY hour, carrier, country, region, campaign, currency, priced
SETTINGS os_thread_priority = 19;
