-- The two windows the alert rules compare, per country x carrier x region x provider
-- (sinks/alerts/business.py sums them into pairs, countries, carriers, regions, providers).
--
-- Parameters: db, since_s (UInt32), now (DateTime64(3, 'UTC')).
-- Current window [now - since_s, now), previous window of the same length just before; a
-- message belongs to a window by its first event, as in the delivery report. Exact and
-- fresh: it reads the message_status view (each message's state after the state machine,
-- whatever merges ran) for the messages with an event in the two windows (a primary-key
-- lookup in `messages`; `events` is pruned by its received_at index), not the
-- status_snapshot the reports read (refreshed every minute). Parts of messages sent in
-- parts are left out, as in the snapshot. Registered messages without any receipt are not
-- here: attempts are messages in a final state (the report's `final` definition); a
-- provider whose receipts stop is the silence rule's.
--   attempts, delivered  messages in a final state / delivered
--   receipts             messages (each has at least one report)
--   reasons              failure reason -> messages, over the attempts not delivered
--   previous_*           the same for the previous window
SELECT
    country,
    carrier,
    region,
    provider,
    countIf(cur AND is_attempt) AS attempts,
    countIf(cur AND current_state = 'delivered') AS delivered,
    countIf(cur) AS receipts,
    sumMapIf(map(ifNull(failure_reason, 'unknown'), toUInt64(1)),
             cur AND is_attempt AND current_state != 'delivered') AS reasons,
    countIf(NOT cur AND is_attempt) AS previous_attempts,
    countIf(NOT cur AND current_state = 'delivered') AS previous_delivered,
    countIf(NOT cur) AS previous_receipts,
    sumMapIf(map(ifNull(failure_reason, 'unknown'), toUInt64(1)),
             NOT cur AND is_attempt AND current_state != 'delivered') AS previous_reasons
FROM
(
    SELECT
        *,
        first_event_at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32}) AS cur
    FROM {db:Identifier}.message_status
    WHERE message_id IN (
            SELECT message_id FROM {db:Identifier}.events
            WHERE received_at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond(2 * {since_s:UInt32})
              AND received_at < {now:DateTime64(3, 'UTC')})
      AND message_id NOT IN (SELECT part_id FROM {db:Identifier}.message_parts)
)
WHERE first_event_at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond(2 * {since_s:UInt32})
  AND first_event_at < {now:DateTime64(3, 'UTC')}
GROUP BY country, carrier, region, provider
