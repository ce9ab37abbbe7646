-- How far the data reaches: the latest receipt time in ClickHouse within the last window
-- (sinks/alerts/business.py ends both windows there, not at the wall clock).
--
-- Parameters: db, since_s (UInt32), now (DateTime64(3, 'UTC')).
-- NULL when nothing arrived for a whole window: then the windows end at `now`.
SELECT toUnixTimestamp64Milli(max(received_at)) / 1000 AS watermark, count() AS events
FROM {db:Identifier}.events
WHERE received_at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32})
  AND received_at <= {now:DateTime64(3, 'UTC')}
