-- What a message cost and who sent it, in the snapshot the reports read: `segments`,
-- `price`, `currency` (as the provider reported them on its receipts; canonical events
-- carry them since ddl/0001, nothing read them) and `sender` (the sender id, protected
-- like the recipient when it looks like a phone number).
--
-- * messages: three more argMax states versioned by emitted_at, like `info` (the worker
--   puts everything known so far on every event, so the last one knows the most):
--   `cost` = (price, currency) of the last event that carried a price, `segments` and
--   `sender` = the last non-NULL ones (argMax skips NULL arguments).
--   messages_mv_v3 (messages_mv_v2's query plus the three states) is created before
--   messages_mv_v2 is dropped: both feeding the table for a moment is harmless (idempotent
--   aggregates).
-- * backfill: the events stored before this file, aggregated again into `messages` by the
--   same query (every column is an idempotent aggregate, so the copy changes nothing but
--   the new states). One pass over `events` (seconds per ten million rows).
-- * message_status: the view again with the four columns (a view holds no data).
-- * status_snapshot: its refreshable view dropped first (a refresh running meanwhile would
--   swap in a table of the old columns), four columns added, the view re-created with them
--   (the sender of a registered message without receipts is the registration's). Each
--   refresh rewrites the whole snapshot, so nothing is lost.
--
-- A message sent in parts (a registration with `parts`) keeps the price and segments of its
-- last reported part (sinks/clickhouse/README.md, "Cost").
ALTER TABLE {db}.messages
    ADD COLUMN IF NOT EXISTS cost AggregateFunction(argMax,
        Tuple(price Nullable(Float64), currency Nullable(String)), DateTime64(3, 'UTC'))
        AFTER enrichment;

ALTER TABLE {db}.messages
    ADD COLUMN IF NOT EXISTS segments AggregateFunction(argMax, Nullable(UInt16),
        DateTime64(3, 'UTC')) AFTER cost;

ALTER TABLE {db}.messages
    ADD COLUMN IF NOT EXISTS sender AggregateFunction(argMax, Nullable(String),
        DateTime64(3, 'UTC')) AFTER segments;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.messages_mv_v3 TO {db}.messages AS
SELECT
    message_id,
    any(toString(e.provider)) AS provider,
    any(e.provider_message_id) AS provider_message_id,
    argMaxState(
        CAST(tuple(
                 toString(e.current_state),
                 if(own, CAST(e.failure_reason, 'Nullable(String)'), NULL),
                 if(own, toString(e.provider_status), ''),
                 if(own, CAST(e.provider_error_code, 'Nullable(String)'), NULL),
                 if(own, e.provider_error_text, NULL)),
             'Tuple(state String, failure_reason Nullable(String), provider_status String, provider_error_code Nullable(String), provider_error_text Nullable(String))'),
        CAST(tuple(
                 transform(toString(e.current_state),
                     ['accepted', 'queued', 'sent', 'unknown', 'delivered', 'undelivered', 'failed', 'rejected', 'expired'],
                     [1, 2, 3, 4, 5, 5, 5, 5, 5], 0),  -- lifecycle.RANK
                 transform(toString(e.current_state), ['delivered', 'unknown'], [2, 0], 1),  -- state_machine.final_key tier
                 multiIf(NOT own, 0, e.sequence IS NOT NULL, 2, e.provider_timestamp IS NOT NULL, 1, 0),
                 multiIf(NOT own, 0.,
                         e.sequence IS NOT NULL, toFloat64(assumeNotNull(e.sequence)),
                         e.provider_timestamp IS NOT NULL, toUnixTimestamp64Milli(assumeNotNull(e.provider_timestamp)) / 1000.,
                         0.),
                 transform(toString(e.current_state),
                     ['unknown', 'failed', 'expired', 'undelivered', 'rejected', 'delivered'],
                     [0, 1, 2, 3, 4, 5], 0),  -- state_machine.PRECEDENCE
                 toUInt8(own),
                 e.emitted_at),
             'Tuple(rank UInt8, tier UInt8, order_kind UInt8, order_value Float64, precedence UInt8, own_report UInt8, emitted_at DateTime64(3, \'UTC\'))')
    ) AS status,
    argMaxState(
        CAST(tuple(e.carrier, e.mcc, e.mnc, e.country, e.region, e.campaign, e.tenant, e.client_ref),
             'Tuple(carrier Nullable(String), mcc Nullable(String), mnc Nullable(String), country Nullable(String), region Nullable(String), campaign Nullable(String), tenant Nullable(String), client_ref Nullable(String))'),
        e.emitted_at
    ) AS info,
    argMaxState(
        CAST(tuple(e.carrier_source, e.line_type, e.area),
             'Tuple(carrier_source Nullable(String), line_type Nullable(String), area Nullable(String))'),
        e.emitted_at
    ) AS enrichment,
    argMaxStateIf(
        CAST(tuple(e.price, e.currency), 'Tuple(price Nullable(Float64), currency Nullable(String))'),
        e.emitted_at,
        e.price IS NOT NULL
    ) AS cost,
    argMaxState(CAST(e.segments, 'Nullable(UInt16)'), e.emitted_at) AS segments,
    argMaxState(CAST(e.sender, 'Nullable(String)'), e.emitted_at) AS sender,
    max(toUInt8(e.is_final)) AS final_hint,
    min(e.received_at) AS first_event_at,
    max(e.received_at) AS last_event_at,
    min(if(e.state IN ('accepted', 'queued', 'sent'), e.reported_at, NULL)) AS submitted_at,
    min(if(e.state = 'sent', e.reported_at, NULL)) AS sent_at,
    min(if(e.state = 'delivered', e.reported_at, NULL)) AS delivered_at
FROM
(
    SELECT
        *,
        state = current_state AS own,
        coalesce(provider_timestamp, received_at) AS reported_at
    FROM {db}.events
) AS e
GROUP BY message_id;

DROP VIEW IF EXISTS {db}.messages_mv_v2;

-- backfill (idempotent aggregates: inserting every message again changes nothing else)
INSERT INTO {db}.messages
SELECT
    message_id,
    any(toString(e.provider)) AS provider,
    any(e.provider_message_id) AS provider_message_id,
    argMaxState(
        CAST(tuple(
                 toString(e.current_state),
                 if(own, CAST(e.failure_reason, 'Nullable(String)'), NULL),
                 if(own, toString(e.provider_status), ''),
                 if(own, CAST(e.provider_error_code, 'Nullable(String)'), NULL),
                 if(own, e.provider_error_text, NULL)),
             'Tuple(state String, failure_reason Nullable(String), provider_status String, provider_error_code Nullable(String), provider_error_text Nullable(String))'),
        CAST(tuple(
                 transform(toString(e.current_state),
                     ['accepted', 'queued', 'sent', 'unknown', 'delivered', 'undelivered', 'failed', 'rejected', 'expired'],
                     [1, 2, 3, 4, 5, 5, 5, 5, 5], 0),  -- lifecycle.RANK
                 transform(toString(e.current_state), ['delivered', 'unknown'], [2, 0], 1),  -- state_machine.final_key tier
                 multiIf(NOT own, 0, e.sequence IS NOT NULL, 2, e.provider_timestamp IS NOT NULL, 1, 0),
                 multiIf(NOT own, 0.,
                         e.sequence IS NOT NULL, toFloat64(assumeNotNull(e.sequence)),
                         e.provider_timestamp IS NOT NULL, toUnixTimestamp64Milli(assumeNotNull(e.provider_timestamp)) / 1000.,
                         0.),
                 transform(toString(e.current_state),
                     ['unknown', 'failed', 'expired', 'undelivered', 'rejected', 'delivered'],
                     [0, 1, 2, 3, 4, 5], 0),  -- state_machine.PRECEDENCE
                 toUInt8(own),
                 e.emitted_at),
             'Tuple(rank UInt8, tier UInt8, order_kind UInt8, order_value Float64, precedence UInt8, own_report UInt8, emitted_at DateTime64(3, \'UTC\'))')
    ) AS status,
    argMaxState(
        CAST(tuple(e.carrier, e.mcc, e.mnc, e.country, e.region, e.campaign, e.tenant, e.client_ref),
             'Tuple(carrier Nullable(String), mcc Nullable(String), mnc Nullable(String), country Nullable(String), region Nullable(String), campaign Nullable(String), tenant Nullable(String), client_ref Nullable(String))'),
        e.emitted_at
    ) AS info,
    argMaxState(
        CAST(tuple(e.carrier_source, e.line_type, e.area),
             'Tuple(carrier_source Nullable(String), line_type Nullable(String), area Nullable(String))'),
        e.emitted_at
    ) AS enrichment,
    argMaxStateIf(
        CAST(tuple(e.price, e.currency), 'Tuple(price Nullable(Float64), currency Nullable(String))'),
        e.emitted_at,
        e.price IS NOT NULL
    ) AS cost,
    argMaxState(CAST(e.segments, 'Nullable(UInt16)'), e.emitted_at) AS segments,
    argMaxState(CAST(e.sender, 'Nullable(String)'), e.emitted_at) AS sender,
    max(toUInt8(e.is_final)) AS final_hint,
    min(e.received_at) AS first_event_at,
    max(e.received_at) AS last_event_at,
    min(if(e.state IN ('accepted', 'queued', 'sent'), e.reported_at, NULL)) AS submitted_at,
    min(if(e.state = 'sent', e.reported_at, NULL)) AS sent_at,
    min(if(e.state = 'delivered', e.reported_at, NULL)) AS delivered_at
FROM
(
    SELECT
        *,
        state = current_state AS own,
        coalesce(provider_timestamp, received_at) AS reported_at
    FROM {db}.events
) AS e
GROUP BY message_id;

CREATE OR REPLACE VIEW {db}.message_status AS
SELECT
    message_id,
    provider,
    provider_message_id,
    s.state AS current_state,
    s.state IN ('delivered', 'undelivered', 'failed', 'rejected', 'expired', 'unknown') AS is_attempt,  -- lifecycle.ATTEMPTS
    s.state IN ('delivered', 'undelivered', 'failed', 'rejected', 'expired', 'unknown') OR final_hint = 1 AS is_final,  -- lifecycle.FINAL
    if(s.state IN ('undelivered', 'failed', 'rejected', 'expired', 'unknown'),
       coalesce(s.failure_reason,
                transform(s.state,
                    ['undelivered', 'failed', 'rejected', 'expired', 'unknown'],
                    ['unreachable', 'provider_error', 'carrier_filtered', 'expired', 'unknown'],  -- lifecycle.DEFAULT_REASON
                    'unknown')),
       NULL) AS failure_reason,
    s.provider_status AS provider_status,
    s.provider_error_code AS provider_error_code,
    s.provider_error_text AS provider_error_text,
    i.carrier AS carrier,
    i.mcc AS mcc,
    i.mnc AS mnc,
    i.country AS country,
    i.region AS region,
    x.carrier_source AS carrier_source,
    x.line_type AS line_type,
    x.area AS area,
    i.campaign AS campaign,
    i.tenant AS tenant,
    i.client_ref AS client_ref,
    sender_id AS sender,
    segment_count AS segments,
    c.price AS price,
    c.currency AS currency,
    first_event_at,
    last_event_at,
    submitted_at,
    sent_at,
    delivered_at,
    if(delivered_at IS NULL OR coalesce(sent_at, submitted_at) IS NULL,
       NULL,
       greatest(0, dateDiff('millisecond', assumeNotNull(coalesce(sent_at, submitted_at)), assumeNotNull(delivered_at))) / 1000.
    ) AS time_to_deliver_s
FROM
(
    SELECT
        message_id,
        any(provider) AS provider,
        any(provider_message_id) AS provider_message_id,
        argMaxMerge(status) AS s,
        argMaxMerge(info) AS i,
        argMaxMerge(enrichment) AS x,
        argMaxMerge(cost) AS c,
        argMaxMerge(segments) AS segment_count,
        argMaxMerge(sender) AS sender_id,
        max(final_hint) AS final_hint,
        min(first_event_at) AS first_event_at,
        max(last_event_at) AS last_event_at,
        min(submitted_at) AS submitted_at,
        min(sent_at) AS sent_at,
        min(delivered_at) AS delivered_at
    FROM {db}.messages
    GROUP BY message_id
);

DROP VIEW IF EXISTS {db}.status_snapshot_mv;

ALTER TABLE {db}.status_snapshot
    ADD COLUMN IF NOT EXISTS sender LowCardinality(Nullable(String)) AFTER client_ref,
    ADD COLUMN IF NOT EXISTS segments Nullable(UInt16) AFTER sender,
    ADD COLUMN IF NOT EXISTS price Nullable(Float64) AFTER segments,
    ADD COLUMN IF NOT EXISTS currency LowCardinality(Nullable(String)) AFTER price;

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
SETTINGS join_use_nulls = 1;
