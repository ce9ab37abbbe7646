-- filtering.sql over status_rollup (ddl/0013): the same parameters, columns and rows, for
-- groups of one grain, and one more parameter, grain (report.py `rollup_grain`).
-- The whole hours of both windows come from status_rollup (the attempts and their
-- failure-reason counts), the hours holding now - 2 * since_s, now - since_s and now from
-- status_snapshot (as in report_rollup.sql): exact.
SELECT
    grp,
    grp2,
    sumIf(n, in_current) AS attempts,
    sumIf(n_filtered, in_current) AS carrier_filtered,
    sumIf(n_blocked, in_current) AS blocked_content,
    carrier_filtered + blocked_content AS filtered,
    filtered / attempts AS share,
    sumIf(n, NOT in_current) AS previous_attempts,
    sumIf(n_filtered, NOT in_current) AS previous_carrier_filtered,
    sumIf(n_blocked, NOT in_current) AS previous_blocked_content,
    previous_carrier_filtered + previous_blocked_content AS previous_filtered,
    if(previous_attempts = 0, NULL, previous_filtered / previous_attempts) AS previous_share,
    filtered >= {min_count:UInt32} AND previous_attempts > 0
        AND share > assumeNotNull(previous_share)
        AND share >= {factor:Float64} * assumeNotNull(previous_share) AS rising
FROM
(
    SELECT
        {by:Identifier} AS grp,
        {by2:Identifier} AS grp2,
        hour >= {now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32}) AS in_current,
        attempts AS n,
        failure_reasons['carrier_filtered'] AS n_filtered,
        failure_reasons['blocked_content'] AS n_blocked
    FROM {db:Identifier}.status_rollup
    WHERE grain = {grain:String}
      AND attempts > 0
      AND hour >= toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond(2 * {since_s:UInt32}))
      AND hour < {now:DateTime64(3, 'UTC')}
      AND hour NOT IN (
          toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond(2 * {since_s:UInt32})),
          toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32})),
          toStartOfHour({now:DateTime64(3, 'UTC')}))
    UNION ALL
    SELECT
        {by:Identifier} AS grp,
        {by2:Identifier} AS grp2,
        first_event_at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32}) AS in_current,
        count() AS n,
        countIf(failure_reason = 'carrier_filtered') AS n_filtered,
        countIf(failure_reason = 'blocked_content') AS n_blocked
    FROM {db:Identifier}.status_snapshot
    WHERE is_attempt
      AND first_event_at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond(2 * {since_s:UInt32})
      AND first_event_at < {now:DateTime64(3, 'UTC')}
      AND toStartOfHour(first_event_at) IN (
          toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond(2 * {since_s:UInt32})),
          toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32})),
          toStartOfHour({now:DateTime64(3, 'UTC')}))
    GROUP BY grp, grp2, in_current
)
GROUP BY grp, grp2
HAVING attempts > 0
ORDER BY rising DESC, share DESC, filtered DESC, grp ASC, grp2 ASC
