-- report.sql over status_rollup (ddl/0013): the same parameters, columns and rows, for
-- groups of one grain (report.py `rollup_grain`), and one more parameter, grain: `provider`
-- (groups among provider, carrier, country, region) or `campaign` (among campaign,
-- carrier, country, region).
--
-- The whole hours of the two windows come from status_rollup; the hours that a boundary
-- cuts through (the hours holding now - 2 * since_s, now - since_s, now and
-- now - unreported_after_s) from status_snapshot, row by row as report.sql reads them.
-- An hour that no boundary cuts lies on one side of each, so its rollup row is in or out
-- of the current window, and its unreceipted messages unreported or not, as a whole: the
-- sums are report.sql's exactly, and the quantile states keep every value, so the
-- quantiles are too.
SELECT
    grp,
    grp2,
    sumIf(n, in_current) AS messages,
    sumIf(n_attempts, in_current) AS final_attempts,
    sumIf(n_unreported, in_current) AS unreported,
    final_attempts + if({sends:UInt8} = 1, unreported, 0) AS attempts,
    sumIf(n_delivered, in_current) AS delivered,
    if(attempts = 0, NULL, delivered / attempts) AS delivery_rate,
    sumMapIf(reasons, in_current) AS failure_reasons,
    arrayElement(quantilesExactInclusiveMergeIf(0.5, 0.9, 0.95, 0.99)(ttd_state, in_current), [1, 3])
        AS ttd,
    sumIf(n_ttd, in_current) AS ttd_samples,
    sumIf(n_attempts + if({sends:UInt8} = 1, n_unreported, 0), NOT in_current) AS previous_attempts,
    sumIf(n_delivered, NOT in_current) AS previous_delivered,
    if(previous_attempts = 0, NULL, previous_delivered / previous_attempts) AS previous_delivery_rate,
    delivery_rate IS NOT NULL AND previous_delivery_rate IS NOT NULL AND previous_delivery_rate > 0
        AND delivery_rate < previous_delivery_rate * (1 - {drop:Float64}) AS dropped,
    sumMapIf(sources, in_current) AS carrier_sources
FROM
(
    SELECT
        {by:Identifier} AS grp,
        {by2:Identifier} AS grp2,
        hour >= {now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32}) AS in_current,
        messages AS n,
        attempts AS n_attempts,
        if(hour < {now:DateTime64(3, 'UTC')} - toIntervalSecond({unreported_after_s:UInt32}),
           unreceipted, 0) AS n_unreported,
        delivered AS n_delivered,
        failure_reasons AS reasons,
        carrier_sources AS sources,
        ttd_samples AS n_ttd,
        ttd AS ttd_state
    FROM {db:Identifier}.status_rollup
    WHERE grain = {grain:String}
      AND hour >= toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond(2 * {since_s:UInt32}))
      AND hour < {now:DateTime64(3, 'UTC')}
      AND hour NOT IN (
          toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond(2 * {since_s:UInt32})),
          toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32})),
          toStartOfHour({now:DateTime64(3, 'UTC')}),
          toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond({unreported_after_s:UInt32})))
    UNION ALL
    SELECT
        {by:Identifier} AS grp,
        {by2:Identifier} AS grp2,
        first_event_at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32}) AS in_current,
        count() AS n,
        countIf(is_attempt) AS n_attempts,
        countIf(registered AND NOT has_receipt
                AND first_event_at < {now:DateTime64(3, 'UTC')} - toIntervalSecond({unreported_after_s:UInt32}))
            AS n_unreported,
        countIf(current_state = 'delivered') AS n_delivered,
        sumMapIf(map(ifNull(failure_reason, 'unknown'), toUInt64(1)),
                 is_attempt AND current_state != 'delivered') AS reasons,
        sumMap(map(ifNull(carrier_source, 'unrecorded'), toUInt64(1))) AS sources,
        countIf(time_to_deliver_s IS NOT NULL) AS n_ttd,
        quantilesExactInclusiveStateIf(0.5, 0.9, 0.95, 0.99)(assumeNotNull(time_to_deliver_s),
                 time_to_deliver_s IS NOT NULL) AS ttd_state
    FROM {db:Identifier}.status_snapshot
    WHERE first_event_at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond(2 * {since_s:UInt32})
      AND first_event_at < {now:DateTime64(3, 'UTC')}
      AND toStartOfHour(first_event_at) IN (
          toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond(2 * {since_s:UInt32})),
          toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32})),
          toStartOfHour({now:DateTime64(3, 'UTC')}),
          toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond({unreported_after_s:UInt32})))
    GROUP BY grp, grp2, in_current
)
GROUP BY grp, grp2
HAVING messages > 0
ORDER BY delivery_rate ASC NULLS LAST, attempts DESC, grp ASC, grp2 ASC
