-- Messages still not final N seconds after their first event, oldest first.
--
-- Parameters: db, seconds (UInt32; 6 h = 21600), now (DateTime64(3, 'UTC')), limit (UInt32).
-- "Not final": current state accepted / queued / sent and the provider never said the
-- message is final (lifecycle.FINAL; `unknown` counts as final). Messages that never got a
-- receipt are the `unreported` report's.
SELECT
    message_id,
    provider,
    provider_message_id,
    current_state,
    carrier,
    country,
    campaign,
    tenant,
    first_event_at,
    last_event_at,
    dateDiff('second', first_event_at, {now:DateTime64(3, 'UTC')}) / 3600. AS age_hours
FROM {db:Identifier}.status_snapshot
WHERE NOT is_final
  AND has_receipt  -- registered messages without any receipt: queries/unreported.sql
  AND first_event_at < {now:DateTime64(3, 'UTC')} - toIntervalSecond({seconds:UInt32})
ORDER BY first_event_at ASC, message_id ASC
LIMIT {limit:UInt32};
