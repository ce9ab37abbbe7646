-- The snapshot's refresh in a fifth of the memory (sinks/clickhouse/README.md, "Freshness
-- of the reports"). ddl/0013's query is unchanged; settings change how it runs:
--
--   optimize_aggregation_in_order = 1   `messages` is sorted by message_id and
--       message_status groups by message_id, so groups are built while reading in key
--       order and emitted as they complete, instead of a hash table of every message;
--   join_algorithm = 'partial_merge', max_bytes_in_join = 100000000   the join with the
--       registrations (`sends`) keeps at most ~100 MB of sorted blocks in memory and
--       spills the rest, instead of a hash table of every registration.
--
-- The same rows come out; `bench.snapshot` checks it whenever both complete (a checksum of the
-- rows written with ddl/0013's settings and with these). Measured there with 5 M
-- registered messages: peak 10.12 -> 1.82 GiB in about the same time (35.8 -> 31.0 s in
-- one run, 25.8 -> 31.8 s in another); at 10 M the hash refresh exceeds the server's
-- memory limit, this one peaks at 2.31 GiB.
--
-- Both views are dropped and re-created: status_rollup_mv depends on status_snapshot_mv
-- (DEPENDS ON), so it is re-created after it with ddl/0013's query, unchanged. Each refresh
-- rewrites its whole table, so nothing is lost.
DROP VIEW IF EXISTS {db}.status_rollup_mv;

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
SETTINGS join_use_nulls = 1, os_thread_priority = 19, optimize_aggregation_in_order = 1,
         join_algorithm = 'partial_merge', max_bytes_in_join = 100000000;

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
