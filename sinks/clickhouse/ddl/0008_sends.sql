-- The sender's registrations (dlr.sends.v1, filled by the sink) and what analytics do with
-- them: consent on every event, messages that never got a receipt, lookups by client_ref
-- and by the id of a part.
--
-- * events: the worker copies submitted_at and consent (source, time) from the message's
--   registration onto its canonical events (streams/sends.py); older rows have NULL.
-- * sends: one row per registered message_id (ReplacingMergeTree on `version` =
--   2^63 - Kafka offset: the FIRST registration of a message id stays, as in the worker,
--   which dead-letters a later one with other content). Phone numbers per DLR_PII_MODE
--   (sinks/clickhouse/sends.py), like events. Read it with FINAL (one key range per
--   lookup, so cheap: the API does) or argMin(.., -version).
-- * message_parts: part id -> message id of messages sent in parts (Vonage reports each
--   part under its own id); analytics leave the parts out, a lookup by a part's id
--   finds its message.
-- * client_refs: (client_ref, message_id, tenant) from events and registrations, ordered
--   by client_ref, so `GET /v1/messages?client_ref=` is a primary-key lookup; backfilled
--   from the events already stored.
-- * status_snapshot gains the registrations (see the view below); `sends_watermark` is to
--   `sends` what `watermark` is to `messages` (sinks/clickhouse/report.py).
ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS submitted_at Nullable(DateTime64(3, 'UTC'));

ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS consent_source LowCardinality(Nullable(String));

ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS consent_at Nullable(DateTime64(3, 'UTC'));

-- Column order and types must match sinks/clickhouse/sends.py (a unit test checks it).
CREATE TABLE IF NOT EXISTS {db}.sends
(
    message_id          String,
    provider            LowCardinality(String),
    provider_message_id String,
    pii_mode            LowCardinality(String),
    recipient           Nullable(String),
    recipient_clear     Nullable(String) TTL toDateTime(registered_at) + INTERVAL {clear_pii_days} DAY,
    sender              Nullable(String),
    sender_clear        Nullable(String) TTL toDateTime(registered_at) + INTERVAL {clear_pii_days} DAY,
    campaign            LowCardinality(Nullable(String)),
    tenant              LowCardinality(Nullable(String)),
    client_ref          Nullable(String),
    submitted_at        DateTime64(3, 'UTC'),
    consent_source      LowCardinality(String),
    consent_at          DateTime64(3, 'UTC'),
    consent_reference   Nullable(String),
    parts               Array(String),
    country             LowCardinality(Nullable(String)),
    region              LowCardinality(Nullable(String)),
    registered_at       DateTime64(3, 'UTC'),
    key_id              LowCardinality(String),
    digest              String,
    version             UInt64,
    inserted_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY message_id
TTL toDateTime(registered_at) + INTERVAL {retention_days} DAY DELETE;

CREATE TABLE IF NOT EXISTS {db}.message_parts
(
    part_id       String,
    message_id    String,
    idx           UInt16,
    registered_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(registered_at)
ORDER BY part_id
TTL toDateTime(registered_at) + INTERVAL {retention_days} DAY DELETE;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.message_parts_mv TO {db}.message_parts AS
SELECT
    concat(toString(provider), ':', part) AS part_id,
    message_id,
    toUInt16(idx - 1) AS idx,
    registered_at
FROM {db}.sends
ARRAY JOIN parts AS part, arrayEnumerate(parts) AS idx
WHERE part_id != message_id;

CREATE TABLE IF NOT EXISTS {db}.client_refs
(
    client_ref String,
    message_id String,
    tenant     LowCardinality(Nullable(String)),
    seen_at    DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(seen_at)
ORDER BY (client_ref, message_id)
TTL toDateTime(seen_at) + INTERVAL {retention_days} DAY DELETE;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.client_refs_events_mv TO {db}.client_refs AS
SELECT assumeNotNull(client_ref) AS client_ref, message_id, tenant, received_at AS seen_at
FROM {db}.events
WHERE client_ref IS NOT NULL;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.client_refs_sends_mv TO {db}.client_refs AS
SELECT assumeNotNull(client_ref) AS client_ref, message_id, tenant, registered_at AS seen_at
FROM {db}.sends
WHERE client_ref IS NOT NULL;

-- backfill: the events stored before this migration (ReplacingMergeTree: a repeat is harmless)
INSERT INTO {db}.client_refs
SELECT assumeNotNull(client_ref), message_id, tenant, received_at
FROM {db}.events
WHERE client_ref IS NOT NULL;

-- The snapshot the reports read: every message with receipts (as before, parts of a
-- message sent in parts left out) plus every registered message without any, whose
-- current_state is 'registered' and whose first_event_at is its submitted_at.
--   registered      the message was registered (dlr.sends.v1)
--   has_receipt     some provider report arrived
--   campaign, tenant, client_ref, country, region: the reports', else the registration's
--   submitted_at    the registration's, else the earliest accepted / queued / sent report
--   time_to_deliver_s  delivered_at - coalesce(sent_at, submitted_at), as in message_status
ALTER TABLE {db}.status_snapshot ADD COLUMN IF NOT EXISTS registered Bool DEFAULT false;

ALTER TABLE {db}.status_snapshot ADD COLUMN IF NOT EXISTS has_receipt Bool DEFAULT true;

ALTER TABLE {db}.status_snapshot ADD COLUMN IF NOT EXISTS consent_source LowCardinality(Nullable(String));

ALTER TABLE {db}.status_snapshot ADD COLUMN IF NOT EXISTS consent_at Nullable(DateTime64(3, 'UTC'));

ALTER TABLE {db}.status_snapshot ADD COLUMN IF NOT EXISTS sends_watermark UInt64 DEFAULT 0;

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
    coalesce(m.campaign, s.campaign) AS campaign,
    coalesce(m.tenant, s.tenant) AS tenant,
    coalesce(m.client_ref, s.client_ref) AS client_ref,
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
    SELECT message_id, campaign, tenant, client_ref, country, region, submitted_at,
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
    s.campaign,
    s.tenant,
    s.client_ref,
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
