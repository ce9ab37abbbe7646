-- compare.sql over status_rollup (ddl/0013): the same parameters, columns and rows, for
-- destinations of the provider grain, and one more parameter, grain (`provider`).
-- The whole hours of the window come from status_rollup, the hours holding now - since_s,
-- now and now - unreported_after_s from status_snapshot (as in report_rollup.sql): exact.
SELECT
    grp,
    grp2,
    provider,
    sum(n) AS messages,
    sum(n_attempts) + if({sends:UInt8} = 1, sum(n_unreported), 0) AS attempts,
    sum(n_delivered) AS delivered,
    arrayElement(quantilesExactInclusiveMerge(0.5, 0.9, 0.95, 0.99)(ttd_state), [1, 3]) AS ttd,
    sum(n_ttd) AS ttd_samples,
    sumIf(n, has_price) AS priced,
    sumMapIf(map(currency, assumeNotNull(amount)), has_price) AS spend,
    sumMapIf(map(currency, n_delivered), has_price) AS priced_delivered
FROM
(
    SELECT
        {by:Identifier} AS grp,
        {by2:Identifier} AS grp2,
        provider,
        priced AS has_price,
        coalesce(currency, nullIf(transform(toString(provider), {cur_providers:Array(String)},
                                            {cur_codes:Array(String)}, ''), ''),
                 'unstated') AS currency,
        messages AS n,
        attempts AS n_attempts,
        if(hour < {now:DateTime64(3, 'UTC')} - toIntervalSecond({unreported_after_s:UInt32}),
           unreceipted, 0) AS n_unreported,
        delivered AS n_delivered,
        ttd_samples AS n_ttd,
        ttd AS ttd_state,
        spend AS amount
    FROM {db:Identifier}.status_rollup
    WHERE grain = {grain:String}
      AND hour >= toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32}))
      AND hour < {now:DateTime64(3, 'UTC')}
      AND hour NOT IN (
          toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32})),
          toStartOfHour({now:DateTime64(3, 'UTC')}),
          toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond({unreported_after_s:UInt32})))
    UNION ALL
    SELECT
        {by:Identifier} AS grp,
        {by2:Identifier} AS grp2,
        provider,
        price IS NOT NULL AS has_price,
        coalesce(currency, nullIf(transform(toString(provider), {cur_providers:Array(String)},
                                            {cur_codes:Array(String)}, ''), ''),
                 'unstated') AS currency,
        count() AS n,
        countIf(is_attempt) AS n_attempts,
        countIf(registered AND NOT has_receipt
                AND first_event_at < {now:DateTime64(3, 'UTC')} - toIntervalSecond({unreported_after_s:UInt32}))
            AS n_unreported,
        countIf(current_state = 'delivered') AS n_delivered,
        countIf(time_to_deliver_s IS NOT NULL) AS n_ttd,
        quantilesExactInclusiveStateIf(0.5, 0.9, 0.95, 0.99)(assumeNotNull(time_to_deliver_s),
                 time_to_deliver_s IS NOT NULL) AS ttd_state,
        sum(price) AS amount
    FROM {db:Identifier}.status_snapshot
    WHERE first_event_at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32})
      AND first_event_at < {now:DateTime64(3, 'UTC')}
      AND toStartOfHour(first_event_at) IN (
          toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32})),
          toStartOfHour({now:DateTime64(3, 'UTC')}),
          toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond({unreported_after_s:UInt32})))
    GROUP BY grp, grp2, provider, has_price, currency
)
GROUP BY grp, grp2, provider
HAVING attempts > 0
ORDER BY grp ASC, grp2 ASC, provider ASC
