-- Current state per message, fed from every insert into {db}.events.
--
-- One row per message after background merges (ORDER BY message_id, no partitioning, so
-- all rows of a message can merge). Every column is an idempotent aggregate (argMax / min /
-- max / any), so duplicated, re-emitted and out-of-order events give exactly the same
-- result: nothing here is ever double counted. Read it through the {db}.message_status view
-- (GROUP BY message_id: exact whether or not merges have run), or with FINAL:
--   SELECT message_id, finalizeAggregation(status).state FROM {db}.messages FINAL
--
-- `status` is argMax(report fields, version), the version being the state machine's order
-- (streams/state_machine.py) as a tuple:
--   rank of current_state                              (lifecycle.RANK)
--   tier: delivered 2, other finals 1, unknown 0       (state_machine.final_key)
--   order kind and value: provider sequence (2), else provider timestamp (1), else none (0),
--     taken only from events that report the current state itself (own_report = 1)
--   precedence of current_state                        (state_machine.PRECEDENCE)
--   own_report: the event reports the current state (not a stale report of another one)
--   emitted_at: processing order, the last tie-breaker
-- The state machine only ever moves up this order, so the maximum is its final decision,
-- even when worker clocks disagree, and the failure reason / provider code it carries belong
-- to a report of that state.
--
-- `info` (carrier, country ...) is argMax by emitted_at: the worker puts everything known so
-- far about the message on every event, so the last one emitted knows the most.
--
-- Times (coalesce(provider_timestamp, received_at) of the reports of each kind):
--   first_event_at / last_event_at  our receipt time of the first / last report; a message
--                                   belongs to a report window by first_event_at
--   submitted_at                    earliest accepted / queued / sent report
--   sent_at                         earliest sent report
--   delivered_at                    earliest delivered report
CREATE TABLE IF NOT EXISTS {db}.messages
(
    message_id          String,
    provider            SimpleAggregateFunction(any, String),
    provider_message_id SimpleAggregateFunction(any, String),
    status              AggregateFunction(argMax,
                            Tuple(
                                state String,
                                failure_reason Nullable(String),
                                provider_status String,
                                provider_error_code Nullable(String),
                                provider_error_text Nullable(String)),
                            Tuple(
                                rank UInt8,
                                tier UInt8,
                                order_kind UInt8,
                                order_value Float64,
                                precedence UInt8,
                                own_report UInt8,
                                emitted_at DateTime64(3, 'UTC'))),
    info                AggregateFunction(argMax,
                            Tuple(
                                carrier Nullable(String),
                                mcc Nullable(String),
                                mnc Nullable(String),
                                country Nullable(String),
                                region Nullable(String),
                                campaign Nullable(String),
                                tenant Nullable(String),
                                client_ref Nullable(String)),
                            DateTime64(3, 'UTC')),
    final_hint          SimpleAggregateFunction(max, UInt8),
    first_event_at      SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_event_at       SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    submitted_at        SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    sent_at             SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    delivered_at        SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC')))
)
ENGINE = AggregatingMergeTree
ORDER BY message_id
TTL toDateTime(last_event_at) + INTERVAL {retention_days} DAY DELETE;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.messages_mv TO {db}.messages AS
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
