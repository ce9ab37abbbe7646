-- Messages that became stuck during the last window, per provider (sinks/alerts/business.py).
--
-- Parameters: db, since_s (UInt32), stuck_after_s (UInt32), now (DateTime64(3, 'UTC')).
-- Messages whose first report came in [now - stuck_after_s - since_s, now - stuck_after_s)
-- and that are still not final (accepted, queued or sent, and the provider never said
-- final): they have been stuck for stuck_after_s by now. Read like windows.sql: the
-- message_status view for the messages with an event in that window (exact, fresh).
SELECT
    provider,
    countIf(NOT is_final) AS stuck,
    count() AS messages,
    topKIf(3)(ifNull(carrier, ''), NOT is_final) AS carriers
FROM {db:Identifier}.message_status
WHERE message_id IN (
        SELECT message_id FROM {db:Identifier}.events
        WHERE received_at >= {now:DateTime64(3, 'UTC')}
                             - toIntervalSecond({stuck_after_s:UInt32} + {since_s:UInt32})
          AND received_at < {now:DateTime64(3, 'UTC')} - toIntervalSecond({stuck_after_s:UInt32}))
  AND message_id NOT IN (SELECT part_id FROM {db:Identifier}.message_parts)
  AND first_event_at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond({stuck_after_s:UInt32} + {since_s:UInt32})
  AND first_event_at < {now:DateTime64(3, 'UTC')} - toIntervalSecond({stuck_after_s:UInt32})
GROUP BY provider
