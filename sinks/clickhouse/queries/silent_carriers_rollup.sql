-- silent_carriers.sql over status_rollup (ddl/0013): the same parameters, columns and rows
-- (arrays sorted), and one more parameter, grain (`provider`: carrier, provider and
-- country are its dimensions). The whole hours of the window come from status_rollup, the
-- hours holding now - since_s and now from status_snapshot (as in report_rollup.sql):
-- exact.
SELECT
    carrier,
    arraySort(groupUniqArray(provider)) AS providers,
    arraySort(groupUniqArray(ifNull(country, ''))) AS countries,
    arraySort(groupUniqArrayArray(sources)) AS carrier_sources,
    sum(n) AS messages,
    sum(n_attempts) AS attempts,
    sum(n_stuck) AS stuck_in_sent,
    min(first) AS first_seen,
    max(last) AS last_seen
FROM
(
    SELECT
        carrier,
        provider,
        country,
        CAST(mapKeys(carrier_sources), 'Array(String)') AS sources,
        messages AS n,
        attempts AS n_attempts,
        sent_not_final AS n_stuck,
        delivered AS n_delivered,
        first_seen AS first,
        last_seen AS last
    FROM {db:Identifier}.status_rollup
    WHERE grain = {grain:String}
      AND carrier IS NOT NULL
      AND hour >= toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32}))
      AND hour < {now:DateTime64(3, 'UTC')}
      AND hour NOT IN (
          toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32})),
          toStartOfHour({now:DateTime64(3, 'UTC')}))
    UNION ALL
    SELECT
        carrier,
        provider,
        country,
        groupUniqArray(ifNull(toString(carrier_source), 'unrecorded')) AS sources,
        count() AS n,
        countIf(is_attempt) AS n_attempts,
        countIf(current_state = 'sent' AND NOT is_final) AS n_stuck,
        countIf(current_state = 'delivered') AS n_delivered,
        min(first_event_at) AS first,
        max(last_event_at) AS last
    FROM {db:Identifier}.status_snapshot
    WHERE first_event_at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32})
      AND first_event_at < {now:DateTime64(3, 'UTC')}
      AND carrier IS NOT NULL
      AND toStartOfHour(first_event_at) IN (
          toStartOfHour({now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32})),
          toStartOfHour({now:DateTime64(3, 'UTC')}))
    GROUP BY carrier, provider, country
)
GROUP BY carrier
HAVING sum(n_delivered) = 0 AND messages >= {min_messages:UInt32}
ORDER BY messages DESC, carrier ASC
