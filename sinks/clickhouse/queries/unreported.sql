-- Registered messages that never got a receipt, per provider and carrier: "no webhooks
-- appearing". Worst share first.
--
-- Parameters: db, since_s (UInt32), now (DateTime64(3, 'UTC')), unreported_after_s (UInt32).
-- A registered message belongs to the window [now - since_s, now) by its submitted_at
-- (first_event_at of a registered-only row; its first receipt's time otherwise). It is
-- unreported when it has no receipt at all and was submitted before
-- now - unreported_after_s; those submitted later are still `waiting`.
--   registered   registered messages of the group in the window
--   unreported   of those, no receipt after unreported_after_s
--   share        unreported / registered of those old enough to tell (registered - waiting)
-- A provider whose webhooks stopped shows share near 1 for all its carriers; one carrier
-- that never reports, near 1 for that carrier only. The carrier is the receipts' (so the
-- unreported messages of a carrier are counted where its other messages name it) and ''
-- when no receipt of the group named one.
SELECT
    provider,
    ifNull(carrier, '') AS carrier,
    countIf(reg) AS registered,
    countIf(reg AND NOT got
            AND submitted < {now:DateTime64(3, 'UTC')} - toIntervalSecond({unreported_after_s:UInt32})) AS unreported,
    countIf(reg AND NOT got
            AND submitted >= {now:DateTime64(3, 'UTC')} - toIntervalSecond({unreported_after_s:UInt32})) AS waiting,
    if(registered - waiting = 0, NULL, unreported / (registered - waiting)) AS share,
    groupUniqArrayIf(ifNull(country, ''), reg AND NOT got) AS countries,
    minIf(submitted, reg AND NOT got) AS oldest_unreported
FROM
(
    SELECT provider, carrier, country, registered AS reg, has_receipt AS got,
           first_event_at AS submitted
    FROM {db:Identifier}.status_snapshot
    WHERE first_event_at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32})
      AND first_event_at < {now:DateTime64(3, 'UTC')}
)
GROUP BY provider, carrier
HAVING unreported > 0
ORDER BY share DESC NULLS LAST, unreported DESC, provider ASC, carrier ASC
