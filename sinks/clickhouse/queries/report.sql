-- Delivery report per group, worst delivery rate first.
--
-- Parameters (clickhouse-client: --param_db=dlr --param_by=country --param_by2=carrier
--   --param_since_s=86400 --param_now='2026-01-02 00:00:00' --param_drop=0.1):
--   db       database
--   by       carrier | country | region | area | campaign | provider | line_type | carrier_source
--   by2      a second dimension for pairs (country x carrier); the same as by for one
--   since_s  window length in seconds; the window is [now - since_s, now)
--   now      end of the window (UTC)
--   drop     relative drop that raises the flag (0.1 = 10 %)
--   sends    1: registered messages without any receipt `unreported_after_s` after their
--            submission count as attempts (the seed's "delivered / sent attempts"); 0: only
--            messages in a final state do (the receipts-only definition)
--   unreported_after_s  seconds (DLR_UNREPORTED_AFTER_S)
--
-- A message belongs to a window by its first event time (first_event_at). Numbers are exact
-- with respect to each message's final state (read from status_snapshot, the rows of the
-- message_status view refreshed every minute; report.refresh() brings it up to date):
--   final_attempts   messages whose current state is in lifecycle.ATTEMPTS
--   unreported       registered messages with no receipt at all, submitted before
--                    now - unreported_after_s (a registered-only message belongs to a window
--                    by its submitted_at)
--   attempts         final_attempts (+ unreported when sends = 1)
--   delivered        messages whose current state is delivered
--   delivery_rate    delivered / attempts (NULL without attempts)
--   failure_reasons  reason -> messages, over the attempts that were not delivered
--   ttd_p50_s/p95_s  exact quantiles (linear interpolation) of time_to_deliver_s
--   previous_*       the same for the window of the same length just before
--   dropped          delivery_rate < previous_delivery_rate * (1 - drop)
--   carrier_sources  carrier_source -> messages in the window (the evidence behind the
--                    carrier names); 'unrecorded' for messages stored before ddl/0007
SELECT
    {by:Identifier} AS grp,
    {by2:Identifier} AS grp2,
    countIf(in_current) AS messages,
    countIf(in_current AND is_attempt) AS final_attempts,
    countIf(in_current AND is_unreported) AS unreported,
    final_attempts + if({sends:UInt8} = 1, unreported, 0) AS attempts,
    countIf(in_current AND current_state = 'delivered') AS delivered,
    if(attempts = 0, NULL, delivered / attempts) AS delivery_rate,
    sumMapIf(map(ifNull(failure_reason, 'unknown'), toUInt64(1)),
             in_current AND is_attempt AND current_state != 'delivered') AS failure_reasons,
    quantilesExactInclusiveIf(0.5, 0.95)(assumeNotNull(time_to_deliver_s),
             in_current AND time_to_deliver_s IS NOT NULL) AS ttd,
    countIf(in_current AND time_to_deliver_s IS NOT NULL) AS ttd_samples,
    countIf(NOT in_current AND (is_attempt OR ({sends:UInt8} = 1 AND is_unreported))) AS previous_attempts,
    countIf(NOT in_current AND current_state = 'delivered') AS previous_delivered,
    if(previous_attempts = 0, NULL, previous_delivered / previous_attempts) AS previous_delivery_rate,
    delivery_rate IS NOT NULL AND previous_delivery_rate IS NOT NULL AND previous_delivery_rate > 0
        AND delivery_rate < previous_delivery_rate * (1 - {drop:Float64}) AS dropped,
    sumMapIf(map(ifNull(carrier_source, 'unrecorded'), toUInt64(1)), in_current) AS carrier_sources
FROM
(
    SELECT
        *,
        first_event_at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond({since_s:UInt32}) AS in_current,
        registered AND NOT has_receipt
            AND first_event_at < {now:DateTime64(3, 'UTC')} - toIntervalSecond({unreported_after_s:UInt32})
            AS is_unreported
    FROM {db:Identifier}.status_snapshot
    WHERE first_event_at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond(2 * {since_s:UInt32})
      AND first_event_at < {now:DateTime64(3, 'UTC')}
)
GROUP BY grp, grp2
HAVING messages > 0
ORDER BY delivery_rate ASC NULLS LAST, attempts DESC, grp ASC, grp2 ASC;
