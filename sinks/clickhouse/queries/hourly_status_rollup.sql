-- hourly.sql over status_rollup (ddl/0013): the same parameters, columns and rows, for
-- groups of one grain, and one more parameter, grain (report.py `rollup_grain`).
-- The whole hours of the window come from status_rollup, the hours holding its two ends
-- from status_snapshot (as in report_rollup.sql): exact.
SELECT
    hour,
    grp,
    grp2,
    sum(n) AS messages,
    sum(n_attempts) AS attempts,
    sum(n_delivered) AS delivered,
    if(attempts = 0, NULL, delivered / attempts) AS delivery_rate,
    sum(n_undelivered) AS undelivered,
    sum(n_failed) AS failed,
    sum(n_rejected) AS rejected,
    sum(n_expired) AS expired,
    sum(n_unknown) AS unknown,
    sumMap(reasons) AS failure_reasons,
    quantilesExactInclusiveMerge(0.5, 0.9, 0.95, 0.99)(ttd_state) AS ttd_p50_p90_p95_p99_s,
    sum(n_ttd) AS ttd_samples
FROM
(
    SELECT
        toDateTime64(hour, 3, 'UTC') AS hour,
        {by:Identifier} AS grp,
        {by2:Identifier} AS grp2,
        messages AS n,
        attempts AS n_attempts,
        delivered AS n_delivered,
        undelivered AS n_undelivered,
        failed AS n_failed,
        rejected AS n_rejected,
        expired AS n_expired,
        unknown AS n_unknown,
        failure_reasons AS reasons,
        ttd_samples AS n_ttd,
        ttd AS ttd_state
    FROM {db:Identifier}.status_rollup
    WHERE grain = {grain:String}
      AND hour >= toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32}))
      AND hour < {now:DateTime64(3, 'UTC')}
      AND hour NOT IN (
          toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32})),
          toStartOfHour({now:DateTime64(3, 'UTC')}))
    UNION ALL
    SELECT
        toDateTime64(toStartOfHour(first_event_at), 3, 'UTC') AS hour,
        {by:Identifier} AS grp,
        {by2:Identifier} AS grp2,
        count() AS n,
        countIf(is_attempt) AS n_attempts,
        countIf(current_state = 'delivered') AS n_delivered,
        countIf(current_state = 'undelivered') AS n_undelivered,
        countIf(current_state = 'failed') AS n_failed,
        countIf(current_state = 'rejected') AS n_rejected,
        countIf(current_state = 'expired') AS n_expired,
        countIf(current_state = 'unknown') AS n_unknown,
        sumMapIf(map(ifNull(failure_reason, 'unknown'), toUInt64(1)),
                 is_attempt AND current_state != 'delivered') AS reasons,
        countIf(time_to_deliver_s IS NOT NULL) AS n_ttd,
        quantilesExactInclusiveStateIf(0.5, 0.9, 0.95, 0.99)(assumeNotNull(time_to_deliver_s),
                 time_to_deliver_s IS NOT NULL) AS ttd_state
    FROM {db:Identifier}.status_snapshot
    WHERE first_event_at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32})
      AND first_event_at < {now:DateTime64(3, 'UTC')}
      AND toStartOfHour(first_event_at) IN (
          toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32})),
          toStartOfHour({now:DateTime64(3, 'UTC')}))
    GROUP BY hour, grp, grp2
)
GROUP BY hour, grp, grp2
ORDER BY hour ASC, grp ASC, grp2 ASC
