-- The snapshot with the enrichment's dimensions (carrier_source, line_type, area; columns
-- added by ddl/0007): the refreshable view of ddl/0008 (messages with a receipt, joined
-- with their registration, plus registered messages without one) re-created with the three
-- columns taken from message_status (NULL for a message without a receipt, which has no
-- recipient data yet). Each refresh rewrites the whole snapshot, so nothing is lost; this
-- file comes after 0008 so that, in whichever order 0007 and 0008 reached a database, the
-- snapshot ends up with both.
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
    NULL,
    NULL,
    NULL,
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
