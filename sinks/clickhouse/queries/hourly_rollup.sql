-- Hourly delivery rollup from the pre-aggregated {db}.hourly_v2 table (fed by the
-- hourly_v2_mv materialized view, ddl/0006): for dashboards, current as soon as a batch is
-- inserted (no snapshot refresh in between); its cost grows with hours x groups, not with
-- messages. report.hourly_rollup() runs it. NOT what `dlr report --report hourly` prints:
-- that is hourly.sql (exact, from status_snapshot).
--
-- Parameters: db, by (carrier | country | region | campaign | provider: the dimensions
-- hourly_v2 keeps), by2 (a second one for pairs; the same as by for one),
-- since_s (UInt32), now (DateTime64(3, 'UTC')).
-- Approximate by design: buckets are the hours events *arrived* in (not the message's first
-- event); each message counts once per column within the merged range, but a final state
-- that was later replaced (undelivered, then delivered) stays in its old column and in
-- `superseded`, a message's attempt may fall in another hour than its first event, and the
-- time-to-deliver quantiles are t-digest estimates. Whole hours from the one holding
-- now - since_s. Unknown dimensions are ''.
SELECT
    hour,
    {by:Identifier} AS grp,
    {by2:Identifier} AS grp2,
    uniqExactMerge(attempts) AS attempts,
    uniqExactMerge(delivered) AS delivered,
    if(attempts = 0, NULL, delivered / attempts) AS delivery_rate,
    uniqExactMerge(undelivered) AS undelivered,
    uniqExactMerge(failed) AS failed,
    uniqExactMerge(rejected) AS rejected,
    uniqExactMerge(expired) AS expired,
    uniqExactMerge(unknown) AS unknown,
    uniqExactMerge(superseded) AS superseded,
    uniqExactMapMerge(reasons) AS failure_reasons,
    quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(time_to_deliver) AS ttd_p50_p90_p95_p99_s
FROM {db:Identifier}.hourly_v2
WHERE hour >= toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32}))
  AND hour < {now:DateTime64(3, 'UTC')}
GROUP BY hour, grp, grp2
ORDER BY hour ASC, grp ASC, grp2 ASC;
