-- Carriers that never report delivered: messages in the window, none delivered.
--
-- Parameters: db, since_s (UInt32), now (DateTime64(3, 'UTC')), min_messages (UInt32).
-- Messages belong to the window [now - since_s, now) by their first event. A carrier with
-- traffic but zero delivered reports either does not send handset receipts or is failing:
-- `stuck_in_sent` (still sent, not final) vs `attempts` (got a final answer) tells which.
-- Messages without a known carrier are left out.
SELECT
    carrier,
    groupUniqArray(provider) AS providers,
    groupUniqArray(ifNull(country, '')) AS countries,
    groupUniqArray(ifNull(carrier_source, 'unrecorded')) AS carrier_sources,
    count() AS messages,
    countIf(is_attempt) AS attempts,
    countIf(current_state = 'sent' AND NOT is_final) AS stuck_in_sent,
    min(first_event_at) AS first_seen,
    max(last_event_at) AS last_seen
FROM {db:Identifier}.status_snapshot
WHERE first_event_at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32})
  AND first_event_at < {now:DateTime64(3, 'UTC')}
  AND carrier IS NOT NULL
GROUP BY carrier
HAVING countIf(current_state = 'delivered') = 0 AND messages >= {min_messages:UInt32}
ORDER BY messages DESC, carrier ASC;
