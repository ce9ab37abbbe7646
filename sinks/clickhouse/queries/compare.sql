-- Providers side by side per destination: which one delivers more, faster, for less.
--
-- Parameters: db, by, by2 (the destination: country, carrier, or a pair such as
-- country,carrier; by2 = by for one), since_s, now (the window [now - since_s, now), by
-- first event), sends / unreported_after_s (the delivery rate's attempts, as report.sql),
-- cur_providers / cur_codes (as cost.sql).
--
-- One row per destination and provider:
--   messages, attempts, delivered   as report.sql (attempts: final states, plus registered
--                    messages without any receipt unreported_after_s after submission when
--                    sends = 1)
--   ttd              exact p50 / p95 (linear interpolation) of time_to_deliver_s of the
--                    delivered messages; ttd_samples: how many had one
--   priced           messages with a reported price
--   spend            currency -> spend; priced_delivered: currency -> delivered messages
--                    with a price in it; spend / priced_delivered is the cost per delivered
--                    message in that currency (prices without a currency: 'unstated')
-- The 95 % Wilson interval of the delivery rate and the "best provider" mark (only where
-- the best one's interval lies above every other's) are computed from these counts by
-- sinks/clickhouse/insights.py `compare()`.
SELECT
    grp,
    grp2,
    provider,
    count() AS messages,
    countIf(is_attempt) + if({sends:UInt8} = 1, countIf(is_unreported), 0) AS attempts,
    countIf(current_state = 'delivered') AS delivered,
    quantilesExactInclusiveIf(0.5, 0.95)(assumeNotNull(time_to_deliver_s),
             time_to_deliver_s IS NOT NULL) AS ttd,
    countIf(time_to_deliver_s IS NOT NULL) AS ttd_samples,
    countIf(price IS NOT NULL) AS priced,
    sumMapIf(map(currency, assumeNotNull(price)), price IS NOT NULL) AS spend,
    sumMapIf(map(currency, toUInt64(current_state = 'delivered')), price IS NOT NULL) AS priced_delivered
FROM
(
    SELECT
        {by:Identifier} AS grp,
        {by2:Identifier} AS grp2,
        provider,
        current_state,
        is_attempt,
        registered AND NOT has_receipt
            AND first_event_at < {now:DateTime64(3, 'UTC')} - toIntervalSecond({unreported_after_s:UInt32})
            AS is_unreported,
        time_to_deliver_s,
        price,
        coalesce(currency, nullIf(transform(toString(provider), {cur_providers:Array(String)},
                                            {cur_codes:Array(String)}, ''), ''),
                 'unstated') AS currency
    FROM {db:Identifier}.status_snapshot
    WHERE first_event_at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32})
      AND first_event_at < {now:DateTime64(3, 'UTC')}
)
GROUP BY grp, grp2, provider
HAVING attempts > 0
ORDER BY grp ASC, grp2 ASC, provider ASC
