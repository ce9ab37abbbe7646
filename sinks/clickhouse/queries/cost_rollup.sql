-- cost.sql over status_rollup (ddl/0013): the same parameters, columns and rows, for
-- groups of the provider grain (the currency of a price stated without one depends on the
-- provider), and one more parameter, grain (`provider`).
-- The whole hours of the window come from status_rollup, the hours holding now - since_s
-- and now from status_snapshot (as in report_rollup.sql): exact (sums of prices up to
-- floating-point rounding, whose order ClickHouse never fixed).
SELECT
    grp,
    grp2,
    currency,
    sum(n) AS messages,
    sum(n_delivered) AS delivered,
    sum(n_not_delivered) AS not_delivered,
    sum(seg) AS segments,
    sum(n_seg) AS segments_reported,
    sum(amount) AS spend,
    sum(amount_delivered) AS spend_delivered,
    sum(amount_not_delivered) AS spend_not_delivered,
    sum(amount_pending) AS spend_pending,
    if(currency IS NULL OR delivered = 0, NULL, spend / delivered) AS cost_per_delivered,
    sum(messages) OVER (PARTITION BY grp, grp2) AS group_messages,
    sum(if(currency IS NULL, 0, messages)) OVER (PARTITION BY grp, grp2) AS group_priced,
    group_priced / group_messages AS price_share
FROM
(
    SELECT
        {by:Identifier} AS grp,
        {by2:Identifier} AS grp2,
        if(NOT priced, NULL,
           coalesce(currency, nullIf(transform(toString(provider), {cur_providers:Array(String)},
                                               {cur_codes:Array(String)}, ''), ''),
                    'unstated')) AS currency,
        messages AS n,
        delivered AS n_delivered,
        undelivered + failed + rejected + expired AS n_not_delivered,
        segments_sum AS seg,
        segments_reported AS n_seg,
        spend AS amount,
        spend_delivered AS amount_delivered,
        spend_not_delivered AS amount_not_delivered,
        spend_pending AS amount_pending
    FROM {db:Identifier}.status_rollup
    WHERE grain = {grain:String}
      AND hour >= toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32}))
      AND hour < {now:DateTime64(3, 'UTC')}
      AND hour NOT IN (
          toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32})),
          toStartOfHour({now:DateTime64(3, 'UTC')}))
    UNION ALL
    SELECT
        {by:Identifier} AS grp,
        {by2:Identifier} AS grp2,
        if(price IS NULL, NULL,
           coalesce(currency, nullIf(transform(toString(provider), {cur_providers:Array(String)},
                                               {cur_codes:Array(String)}, ''), ''),
                    'unstated')) AS currency,
        count() AS n,
        countIf(current_state = 'delivered') AS n_delivered,
        countIf(current_state IN ('undelivered', 'failed', 'rejected', 'expired')) AS n_not_delivered,
        sum(segments) AS seg,
        countIf(segments IS NOT NULL) AS n_seg,
        sum(price) AS amount,
        sumIf(price, current_state = 'delivered') AS amount_delivered,
        sumIf(price, current_state IN ('undelivered', 'failed', 'rejected', 'expired')) AS amount_not_delivered,
        sumIf(price, NOT is_final) AS amount_pending
    FROM {db:Identifier}.status_snapshot
    WHERE first_event_at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32})
      AND first_event_at < {now:DateTime64(3, 'UTC')}
      AND toStartOfHour(first_event_at) IN (
          toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32})),
          toStartOfHour({now:DateTime64(3, 'UTC')}))
    GROUP BY grp, grp2, currency
)
GROUP BY grp, grp2, currency
ORDER BY group_messages DESC, grp ASC, grp2 ASC, currency IS NULL ASC, spend DESC, currency ASC
