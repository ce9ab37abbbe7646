-- One exact row per message: the current state, who/where, and the lifecycle times.
--
-- Aggregates {db}.messages by message_id, so the answer is exact whether or not background
-- merges have run. Report queries (sinks/clickhouse/queries/) read this view.
--
--   is_attempt        current_state in lifecycle.ATTEMPTS: the delivery-rate denominator
--   is_final          current_state in lifecycle.FINAL, or the provider said it is final
--   failure_reason    for final states other than delivered: the provider's mapped reason,
--                     else lifecycle.DEFAULT_REASON of the state
--   time_to_deliver_s delivered_at - coalesce(sent_at, submitted_at) in seconds (>= 0);
--                     NULL when not delivered or no earlier report exists
CREATE VIEW IF NOT EXISTS {db}.message_status AS
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
        max(final_hint) AS final_hint,
        min(first_event_at) AS first_event_at,
        max(last_event_at) AS last_event_at,
        min(submitted_at) AS submitted_at,
        min(sent_at) AS sent_at,
        min(delivered_at) AS delivered_at
    FROM {db}.messages
    GROUP BY message_id
);
