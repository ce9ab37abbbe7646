-- What was spent, per group and currency, exact over status_snapshot.
--
-- Parameters (clickhouse-client: --param_db=dlr --param_by=provider --param_by2=country
--   --param_since_s=2592000 --param_now='2026-12-01 00:00:00'
--   --param_cur_providers="['vonage']" --param_cur_codes="['EUR']"):
--   db, by, by2      database and the group dimensions (by2 = by for one)
--   since_s, now     the window [now - since_s, now); a message belongs to it by its first
--                    event (a registered message without receipts: by its submission)
--   cur_providers, cur_codes  the currency of providers whose receipts state a price without
--                    one (DLR_PRICE_CURRENCIES, e.g. Vonage's SMS API: the account's currency)
--
-- One row per group and currency. A price is the one the provider reported on its receipts
-- (the last one that stated it); spend is never summed across currencies:
--   currency         ISO 4217 code; 'unstated' for a price reported without a currency that
--                    cur_providers does not name; NULL for the messages without any price
--                    (providers that never report one, messages without receipts)
--   messages, delivered, not_delivered (undelivered, failed, rejected, expired)
--   segments         the segments reported; segments_reported: messages that reported them
--   spend            sum of the prices (NULL for the NULL currency)
--   spend_delivered, spend_not_delivered, spend_pending (not final yet; unknown counts
--                    as final)
--   cost_per_delivered  spend / delivered of the row: what one delivered message cost,
--                    failures included (NULL without a price or a delivered message)
--   group_messages, group_priced, price_share  per group: messages, those with a price and
--                    their share (the same on every row of the group)
SELECT
    grp,
    grp2,
    currency,
    count() AS messages,
    countIf(current_state = 'delivered') AS delivered,
    countIf(current_state IN ('undelivered', 'failed', 'rejected', 'expired')) AS not_delivered,
    sum(seg) AS segments,
    countIf(seg IS NOT NULL) AS segments_reported,
    sum(amount) AS spend,
    sumIf(amount, current_state = 'delivered') AS spend_delivered,
    sumIf(amount, current_state IN ('undelivered', 'failed', 'rejected', 'expired')) AS spend_not_delivered,
    sumIf(amount, NOT is_final) AS spend_pending,
    if(currency IS NULL OR delivered = 0, NULL, spend / delivered) AS cost_per_delivered,
    sum(messages) OVER (PARTITION BY grp, grp2) AS group_messages,
    sum(if(currency IS NULL, 0, messages)) OVER (PARTITION BY grp, grp2) AS group_priced,
    group_priced / group_messages AS price_share
FROM
(
    SELECT
        {by:Identifier} AS grp,
        {by2:Identifier} AS grp2,
        if(price IS NULL, NULL,
           coalesce(currency, nullIf(transform(toString(provider), {cur_providers:Array(String)},
                                               {cur_codes:Array(String)}, ''), ''),
                    'unstated')) AS currency,
        current_state,
        is_final,
        segments AS seg,
        price AS amount
    FROM {db:Identifier}.status_snapshot
    WHERE first_event_at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32})
      AND first_event_at < {now:DateTime64(3, 'UTC')}
)
GROUP BY grp, grp2, currency
ORDER BY group_messages DESC, grp ASC, grp2 ASC, currency IS NULL ASC, spend DESC, currency ASC
