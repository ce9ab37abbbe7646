-- The enrichment's dimensions (streams/enrich.py) on every table and view that carries the
-- message's carrier and country: `carrier_source` (provider | mcc_mnc | number_range |
-- none: the evidence behind `carrier`), `line_type` (libphonenumber's type of the number)
-- and `area` (a place below the country, e.g. a US city and state).
--
-- Nothing already stored changes meaning: events written before have NULL in the three
-- new columns (the contract makes them optional), and so do their messages.
--
-- * events: three columns, after `region`.
-- * messages: a second argMax state, `enrichment`, versioned like `info` by emitted_at (the
--   worker puts what it knows so far on every event, so the last one knows the most).
--   The old view messages_mv cannot fill it, so messages_mv_v2 (its query plus that state)
--   is created first and messages_mv dropped after: in between both feed the table, which
--   is harmless because every column is an idempotent aggregate.
-- * message_status: the view again with the three columns (CREATE OR REPLACE: a view holds
--   no data).
-- * status_snapshot: three columns. Its refreshable view is re-created with them by
--   ddl/0009 (after 0008 re-created it for the sender's registrations); until then they
--   stay NULL in the snapshot.
-- * hourly_v2 keeps its dimensions (provider, carrier, country, region, campaign).
ALTER TABLE {db}.events
    ADD COLUMN IF NOT EXISTS carrier_source LowCardinality(Nullable(String)) AFTER region,
    ADD COLUMN IF NOT EXISTS line_type LowCardinality(Nullable(String)) AFTER carrier_source,
    ADD COLUMN IF NOT EXISTS area LowCardinality(Nullable(String)) AFTER line_type;

ALTER TABLE {db}.messages
    ADD COLUMN IF NOT EXISTS enrichment AggregateFunction(argMax,
        Tuple(carrier_source Nullable(String), line_type Nullable(String), area Nullable(String)),
        DateTime64(3, 'UTC')) AFTER info;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.messages_mv_v2 TO {db}.messages AS
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

DROP VIEW IF EXISTS {db}.messages_mv;

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
        max(final_hint) AS final_hint,
        min(first_event_at) AS first_event_at,
        max(last_event_at) AS last_event_at,
        min(submitted_at) AS submitted_at,
        min(sent_at) AS sent_at,
        min(delivered_at) AS delivered_at
    FROM {db}.messages
    GROUP BY message_id
);

ALTER TABLE {db}.status_snapshot
    ADD COLUMN IF NOT EXISTS carrier_source LowCardinality(Nullable(String)) AFTER region,
    ADD COLUMN IF NOT EXISTS line_type LowCardinality(Nullable(String)) AFTER carrier_source,
    ADD COLUMN IF NOT EXISTS area LowCardinality(Nullable(String)) AFTER line_type;
