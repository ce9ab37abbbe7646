-- Hourly delivery aggregates per hour x provider x carrier x country x region x campaign,
-- for dashboards and alerting over long ranges. Fed from every insert into {db}.events.
--
-- The hour is the hour we received the event (received_at); dimensions are those the event
-- carries ('' when unknown). Counts are *distinct messages* (uniqExact states of
-- message_id), so duplicated and re-emitted events are never double counted, and merging
-- states across any range of hours still counts each message once:
--   attempts       messages that entered a final state (lifecycle.ATTEMPTS) in that hour
--   delivered      messages that became delivered (delivered is never replaced: exact)
--   undelivered .. unknown   messages that entered that final state; a message whose
--                  final state was later replaced (e.g. undelivered, then delivered) stays
--                  counted there and is also counted in `superseded`
--   reasons        per failure reason, messages that entered a failure or unknown state
--   time_to_deliver  t-digest of delivered - coalesce(sent, submitted) seconds, from the
--                  message's earlier reports (same batch or already in {db}.messages);
--                  approximate, and a re-emitted delivered event adds a second sample
--
-- Because buckets follow event hours (not the message's first event) and superseded finals
-- stay in their old bucket, these numbers are NOT what report() returns: report() and
-- queries/*.sql read the exact {db}.message_status view. Delivery rate from this table:
-- uniqExactMerge(delivered) / uniqExactMerge(attempts), see README.md.
CREATE TABLE IF NOT EXISTS {db}.hourly
(
    hour            DateTime('UTC'),
    provider        LowCardinality(String),
    carrier         LowCardinality(String),
    country         LowCardinality(String),
    region          LowCardinality(String),
    campaign        LowCardinality(String),
    attempts        AggregateFunction(uniqExact, Nullable(String)),
    delivered       AggregateFunction(uniqExact, Nullable(String)),
    undelivered     AggregateFunction(uniqExact, Nullable(String)),
    failed          AggregateFunction(uniqExact, Nullable(String)),
    rejected        AggregateFunction(uniqExact, Nullable(String)),
    expired         AggregateFunction(uniqExact, Nullable(String)),
    unknown         AggregateFunction(uniqExact, Nullable(String)),
    superseded      AggregateFunction(uniqExact, Nullable(String)),
    reasons         AggregateFunction(uniqExactMap, Map(String, String)),
    time_to_deliver AggregateFunction(quantilesTDigest(0.5, 0.9, 0.95, 0.99), Nullable(Float64))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, provider, carrier, country, region, campaign)
TTL hour + INTERVAL {retention_days} DAY DELETE;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.hourly_mv TO {db}.hourly AS
SELECT
    toStartOfHour(e.received_at) AS hour,
    toString(e.provider) AS provider,
    ifNull(toString(e.carrier), '') AS carrier,
    ifNull(toString(e.country), '') AS country,
    ifNull(toString(e.region), '') AS region,
    ifNull(toString(e.campaign), '') AS campaign,
    uniqExactState(if(entered_attempt, e.message_id, NULL)) AS attempts,
    uniqExactState(if(entered AND e.current_state = 'delivered', e.message_id, NULL)) AS delivered,
    uniqExactState(if(entered AND e.current_state = 'undelivered', e.message_id, NULL)) AS undelivered,
    uniqExactState(if(entered AND e.current_state = 'failed', e.message_id, NULL)) AS failed,
    uniqExactState(if(entered AND e.current_state = 'rejected', e.message_id, NULL)) AS rejected,
    uniqExactState(if(entered AND e.current_state = 'expired', e.message_id, NULL)) AS expired,
    uniqExactState(if(entered AND e.current_state = 'unknown', e.message_id, NULL)) AS unknown,
    uniqExactState(if(entered AND e.previous_state IN ('delivered', 'undelivered', 'failed', 'rejected', 'expired', 'unknown'),  -- lifecycle.ATTEMPTS
                      e.message_id, NULL)) AS superseded,
    uniqExactMapState(
        if(entered AND e.current_state IN ('undelivered', 'failed', 'rejected', 'expired', 'unknown'),
           map(coalesce(toString(e.failure_reason),
                        transform(toString(e.current_state),
                            ['undelivered', 'failed', 'rejected', 'expired', 'unknown'],
                            ['unreachable', 'provider_error', 'carrier_filtered', 'expired', 'unknown'],  -- lifecycle.DEFAULT_REASON
                            'unknown')),
               e.message_id),
           map())) AS reasons,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(
        if(entered AND e.current_state = 'delivered' AND t.started IS NOT NULL,
           greatest(0, dateDiff('millisecond', assumeNotNull(t.started), e.reported_at)) / 1000.,
           NULL)) AS time_to_deliver
FROM
(
    SELECT
        *,
        transition = 'advanced' AS entered,
        transition = 'advanced'
            AND current_state IN ('delivered', 'undelivered', 'failed', 'rejected', 'expired', 'unknown')  -- lifecycle.ATTEMPTS
            AND (previous_state IS NULL
                 OR previous_state NOT IN ('delivered', 'undelivered', 'failed', 'rejected', 'expired', 'unknown'))  -- lifecycle.ATTEMPTS
            AS entered_attempt,
        coalesce(provider_timestamp, received_at) AS reported_at
    FROM {db}.events
) AS e
LEFT JOIN
(
    -- earlier reports of the messages delivered in this block: from the block itself and
    -- from what {db}.messages already holds (min is idempotent, overlap does no harm)
    SELECT message_id, coalesce(min(sent), min(submitted)) AS started
    FROM
    (
        SELECT
            message_id,
            if(state = 'sent', coalesce(provider_timestamp, received_at), NULL) AS sent,
            coalesce(provider_timestamp, received_at) AS submitted
        FROM {db}.events
        WHERE state IN ('accepted', 'queued', 'sent')
        UNION ALL
        SELECT message_id, sent_at AS sent, submitted_at AS submitted
        FROM {db}.messages
        WHERE message_id IN (SELECT message_id FROM {db}.events WHERE current_state = 'delivered')
    )
    GROUP BY message_id
) AS t ON t.message_id = e.message_id
GROUP BY hour, provider, carrier, country, region, campaign;
