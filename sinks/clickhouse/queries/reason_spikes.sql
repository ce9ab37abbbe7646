-- Failure reasons whose share of a group's attempts jumped against the previous window.
--
-- Parameters: db, by (carrier | country | region | area | campaign | provider | line_type |
-- carrier_source), by2 (a second dimension for pairs; the same as by for one), since_s (UInt32),
-- now (DateTime64(3, 'UTC')), factor (Float64), min_count (UInt32).
-- Current window [now - since_s, now), previous window of the same length just before it;
-- a message belongs to a window by its first event. share = attempts that ended with that
-- failure reason / all attempts of the group in the window. A spike needs a baseline
-- (attempts in the previous window), at least min_count messages with the reason now, and
-- share >= factor * previous share (any share when the reason did not occur before).
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
            {by:Identifier} AS grp,
            {by2:Identifier} AS grp2,
            failure_reason AS reason,
            countIf(first_event_at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32})) AS count,
            countIf(first_event_at < {now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32})) AS previous_count
        FROM {db:Identifier}.status_snapshot
        WHERE is_attempt
          AND first_event_at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond(2 * {since_s:UInt32})
          AND first_event_at < {now:DateTime64(3, 'UTC')}
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
         count DESC, grp ASC, grp2 ASC, reason ASC;
