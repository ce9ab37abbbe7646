-- Hourly delivery trend per group: what `dlr report --report hourly` prints (report.hourly()).
--
-- Parameters: db, by (carrier | country | region | area | campaign | provider | line_type |
-- carrier_source), by2 (a second dimension for pairs; the same as by for one),
-- since_s (UInt32), now (DateTime64(3, 'UTC')).
-- Exact, from the same per-message source as report.sql (status_snapshot, the rows of the
-- message_status view; report.refresh() brings it up to date): the messages first seen in
-- [now - since_s, now), bucketed by the hour of their first event, each counted once, in its
-- final state. Summed over the hours of a group, the columns equal report.sql's for the same
-- window (the first and last buckets are partial hours when now is not on the hour):
--   messages         messages whose first event falls in the hour
--   attempts         messages whose current state is in lifecycle.ATTEMPTS
--   delivered        messages whose current state is delivered
--   delivery_rate    delivered / attempts (NULL without attempts)
--   undelivered .. unknown   messages whose current state is that final state
--   failure_reasons  reason -> messages, over the attempts that were not delivered
--   ttd_p50_p90_p95_p99_s  exact quantiles (linear interpolation) of time_to_deliver_s
--   ttd_samples      delivered messages with a time to deliver
-- Unknown dimensions are NULL. For the pre-aggregated rollup for dashboards (hourly_v2:
-- current at every insert, approximate, by event hour), see hourly_rollup.sql.
SELECT
    toStartOfHour(first_event_at) AS hour,
    {by:Identifier} AS grp,
    {by2:Identifier} AS grp2,
    count() AS messages,
    countIf(is_attempt) AS attempts,
    countIf(current_state = 'delivered') AS delivered,
    if(attempts = 0, NULL, delivered / attempts) AS delivery_rate,
    countIf(current_state = 'undelivered') AS undelivered,
    countIf(current_state = 'failed') AS failed,
    countIf(current_state = 'rejected') AS rejected,
    countIf(current_state = 'expired') AS expired,
    countIf(current_state = 'unknown') AS unknown,
    sumMapIf(map(ifNull(failure_reason, 'unknown'), toUInt64(1)),
             is_attempt AND current_state != 'delivered') AS failure_reasons,
    quantilesExactInclusiveIf(0.5, 0.9, 0.95, 0.99)(assumeNotNull(time_to_deliver_s),
             time_to_deliver_s IS NOT NULL) AS ttd_p50_p90_p95_p99_s,
    countIf(time_to_deliver_s IS NOT NULL) AS ttd_samples
FROM {db:Identifier}.status_snapshot
WHERE first_event_at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32})
  AND first_event_at < {now:DateTime64(3, 'UTC')}
GROUP BY hour, grp, grp2
ORDER BY hour ASC, grp ASC, grp2 ASC;
