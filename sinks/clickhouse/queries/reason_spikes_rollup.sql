-- reason_spikes.sql over status_rollup (ddl/0013): the same parameters, columns and rows,
-- for groups of one grain, and one more parameter, grain (report.py `rollup_grain`).
-- The whole hours of both windows come from status_rollup (each row's failure-reason
-- counts, and its delivered attempts under a NULL reason as in the snapshot), the hours
-- holding now - 2 * since_s, now - since_s and now from status_snapshot (as in
-- report_rollup.sql): exact.
SELECT
    grp,
    grp2,
    reason,
    count,
    attempts,
    count / attempts AS share,
    previous_count,
    previous_attempts,
    previous_count / previous_attempts AS previous_share
FROM
(
    SELECT
        grp,
        grp2,
        reason,
        count,
        previous_count,
        sum(count) OVER (PARTITION BY grp, grp2) AS attempts,
        sum(previous_count) OVER (PARTITION BY grp, grp2) AS previous_attempts
    FROM
    (
        SELECT
            grp,
            grp2,
            reason,
            sumIf(n, in_current) AS count,
            sumIf(n, NOT in_current) AS previous_count
        FROM
        (
            SELECT
                {by:Identifier} AS grp,
                {by2:Identifier} AS grp2,
                hour >= {now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32}) AS in_current,
                entry.1 AS reason,
                entry.2 AS n
            FROM {db:Identifier}.status_rollup
            ARRAY JOIN arrayConcat(
                arrayZip(CAST(mapKeys(failure_reasons), 'Array(Nullable(String))'),
                         mapValues(failure_reasons)),
                [(CAST(NULL, 'Nullable(String)'), toUInt64(attempts - arraySum(mapValues(failure_reasons))))]
            ) AS entry
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
                failure_reason AS reason,
                count() AS n
            FROM {db:Identifier}.status_snapshot
            WHERE is_attempt
              AND first_event_at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond(2 * {since_s:UInt32})
              AND first_event_at < {now:DateTime64(3, 'UTC')}
              AND toStartOfHour(first_event_at) IN (
                  toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond(2 * {since_s:UInt32})),
                  toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32})),
                  toStartOfHour({now:DateTime64(3, 'UTC')}))
            GROUP BY grp, grp2, in_current, reason
        )
        GROUP BY grp, grp2, reason
    )
)
WHERE reason IS NOT NULL
  AND attempts > 0
  AND previous_attempts > 0
  AND count >= {min_count:UInt32}
  AND count / attempts > previous_count / previous_attempts
  AND count / attempts >= {factor:Float64} * (previous_count / previous_attempts)
ORDER BY if(previous_count = 0, inf, (count / attempts) / (previous_count / previous_attempts)) DESC,
         count DESC, grp ASC, grp2 ASC, reason ASC
