-- Content filtering per group (campaign, sender, or a pair such as campaign,carrier): the
-- share of attempts the carrier filtered (`carrier_filtered`) or refused for their content
-- (`blocked_content`), against the window of the same length just before.
--
-- Parameters: db, by, by2 (by2 = by for one), since_s, now (the current window
-- [now - since_s, now) and the previous one before it, by first event), factor (Float64),
-- min_count (UInt32).
--   attempts          messages in a final state (lifecycle.ATTEMPTS)
--   carrier_filtered, blocked_content   attempts that ended with that failure reason
--   filtered          both; share = filtered / attempts
--   previous_*        the same for the previous window
--   rising            at least min_count filtered now, traffic before, and a share at
--                     least factor times the previous one (and above it)
-- Groups with attempts in the current window; rising first, then the highest share.
SELECT
    grp,
    grp2,
    countIf(in_current) AS attempts,
    countIf(in_current AND failure_reason = 'carrier_filtered') AS carrier_filtered,
    countIf(in_current AND failure_reason = 'blocked_content') AS blocked_content,
    carrier_filtered + blocked_content AS filtered,
    filtered / attempts AS share,
    countIf(NOT in_current) AS previous_attempts,
    countIf(NOT in_current AND failure_reason = 'carrier_filtered') AS previous_carrier_filtered,
    countIf(NOT in_current AND failure_reason = 'blocked_content') AS previous_blocked_content,
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
        failure_reason,
        first_event_at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32}) AS in_current
    FROM {db:Identifier}.status_snapshot
    WHERE is_attempt
      AND first_event_at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond(2 * {since_s:UInt32})
      AND first_event_at < {now:DateTime64(3, 'UTC')}
)
GROUP BY grp, grp2
HAVING attempts > 0
ORDER BY rising DESC, share DESC, filtered DESC, grp ASC, grp2 ASC
