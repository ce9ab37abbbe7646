-- What to reconcile a provider's invoice against: per day and destination country, the
-- messages sent through the provider, their segments, the spend its receipts reported and
-- how many were delivered.
--
-- Parameters: db, provider, start / end (DateTime64(3, 'UTC'): [start, end), e.g. a
-- calendar month), cur_providers / cur_codes (as cost.sql).
-- A message belongs to the day (UTC) it was sent: its submission (the sender's
-- registration, else the earliest accepted / queued / sent report, at the provider's time
-- when the report states one), else its first receipt. Messages are looked up by first
-- event from 2 days before start to 35 days after end (receipts come late, the snapshot is
-- sorted by first event).
--   currency          of the reported prices ('unstated': a price without currency that
--                     cur_providers does not name); '' for messages without a price
--   messages, delivered, not_delivered (undelivered, failed, rejected, expired),
--   unreported        registered messages without any receipt (no price, no state)
--   segments / segments_reported, priced / spend   as cost.sql
SELECT
    toDate(sent_time) AS day,
    ifNull(country, '') AS country,
    currency,
    count() AS messages,
    countIf(current_state = 'delivered') AS delivered,
    countIf(current_state IN ('undelivered', 'failed', 'rejected', 'expired')) AS not_delivered,
    countIf(NOT has_receipt) AS unreported,
    ifNull(sum(seg), 0) AS segments,
    countIf(seg IS NOT NULL) AS segments_reported,
    countIf(amount IS NOT NULL) AS priced,
    ifNull(sum(amount), 0) AS spend
FROM
(
    SELECT
        coalesce(submitted_at, sent_at, first_event_at) AS sent_time,
        country,
        if(price IS NULL, '',
           coalesce(currency, nullIf(transform(toString(provider), {cur_providers:Array(String)},
                                               {cur_codes:Array(String)}, ''), ''),
                    'unstated')) AS currency,
        current_state,
        has_receipt,
        segments AS seg,
        price AS amount
    FROM {db:Identifier}.status_snapshot
    WHERE provider = {provider:String}
      AND first_event_at >= {start:DateTime64(3, 'UTC')} - INTERVAL 2 DAY
      AND first_event_at < {end:DateTime64(3, 'UTC')} + INTERVAL 35 DAY
)
WHERE sent_time >= {start:DateTime64(3, 'UTC')} AND sent_time < {end:DateTime64(3, 'UTC')}
GROUP BY day, country, currency
ORDER BY day ASC, country ASC, currency ASC
