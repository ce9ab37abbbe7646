-- Hourly delivery trend from the pre-aggregated {db}.hourly_v2 table (fast, for dashboards).
--
-- Parameters: db, by (carrier | country | region | campaign | provider),
-- since_s (UInt32), now (DateTime64(3, 'UTC')).
-- Buckets are the hours events arrived in; each message counts once per column within the
-- merged range, but a final state that was later replaced stays in its old column and a
-- message's attempt may fall in another hour than its first event. For exact numbers per
-- window use report.sql (what report() runs). Unknown dimensions are ''.
SELECT
    hour,
    {by:Identifier} AS grp,
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
GROUP BY hour, grp
ORDER BY hour ASC, grp ASC;
