"""The dashboard's read-only SQL: status_snapshot (messages), alert_state / alerts (alerts).

Every query takes ClickHouse parameters (`{name:Type}`); the group column is an
`Identifier` parameter checked against `GROUPS`, never spliced into the text. A message
belongs to a window by its first event, as in the reports; numbers are the snapshot's,
refreshed every minute (`as_of` says when).
"""

from __future__ import annotations

__all__ = ["GROUPS", "SQL"]

#: The dimensions the page can group by.
GROUPS = ("carrier", "country", "region", "provider", "campaign")

_WINDOW = """
    first_event_at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond({window:UInt32})
    AND first_event_at < {now:DateTime64(3, 'UTC')}
"""

#: The current window and the one before it; `cur` says which a message is in.
_TWO_WINDOWS = """(
    SELECT *, first_event_at >= {now:DateTime64(3, 'UTC')}
              - toIntervalSecond({window:UInt32}) AS cur
    FROM {db:Identifier}.status_snapshot
    WHERE first_event_at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond(2 * {window:UInt32})
      AND first_event_at < {now:DateTime64(3, 'UTC')}
)"""
#: The same, for the rows that have the group column.
_TWO_WINDOWS_BY = _TWO_WINDOWS[:-2] + "\n      AND {by:Identifier} IS NOT NULL\n)"

SQL: dict[str, str] = {
    "summary": """
SELECT
    countIf(cur) AS messages,
    countIf(cur AND is_attempt) AS attempts,
    countIf(cur AND current_state = 'delivered') AS delivered,
    countIf(cur AND NOT is_final AND has_receipt) AS pending,
    countIf(NOT cur AND is_attempt) AS previous_attempts,
    countIf(NOT cur AND current_state = 'delivered') AS previous_delivered,
    quantilesExactInclusiveIf(0.5, 0.95)(assumeNotNull(time_to_deliver_s),
        cur AND time_to_deliver_s IS NOT NULL) AS ttd,
    countIf(cur AND time_to_deliver_s IS NOT NULL) AS ttd_samples
FROM """
    + _TWO_WINDOWS
    + """
""",
    "trend": f"""
SELECT
    toStartOfInterval(first_event_at, toIntervalSecond({{bucket:UInt32}})) AS t,
    toString({{by:Identifier}}) AS grp,
    countIf(is_attempt) AS attempts,
    countIf(current_state = 'delivered') AS delivered
FROM {{db:Identifier}}.status_snapshot
WHERE {_WINDOW} AND {{by:Identifier}} IS NOT NULL
GROUP BY t, grp
ORDER BY t, grp
""",
    "volume": f"""
SELECT
    toStartOfInterval(first_event_at, toIntervalSecond({{bucket:UInt32}})) AS t,
    count() AS messages,
    countIf(is_attempt) AS attempts,
    countIf(current_state = 'delivered') AS delivered,
    countIf(is_attempt AND current_state != 'delivered') AS failed,
    quantilesExactInclusiveIf(0.5, 0.95)(assumeNotNull(time_to_deliver_s),
        time_to_deliver_s IS NOT NULL) AS ttd
FROM {{db:Identifier}}.status_snapshot
WHERE {_WINDOW}
GROUP BY t
ORDER BY t
""",
    "reasons": f"""
SELECT ifNull(failure_reason, 'unknown') AS reason, count() AS messages
FROM {{db:Identifier}}.status_snapshot
WHERE {_WINDOW} AND is_attempt AND current_state != 'delivered'
GROUP BY reason
ORDER BY messages DESC, reason
""",
    "worst": """
SELECT
    toString({by:Identifier}) AS grp,
    countIf(cur AND is_attempt) AS attempts,
    countIf(cur AND current_state = 'delivered') AS delivered,
    countIf(NOT cur AND is_attempt) AS previous_attempts,
    countIf(NOT cur AND current_state = 'delivered') AS previous_delivered
FROM """
    + _TWO_WINDOWS_BY
    + """
GROUP BY grp
HAVING attempts > 0
""",
    "alerts_active": """
SELECT fingerprint, rule, severity, labels, value, threshold, summary, runbook, starts_at,
       updated_at
FROM {db:Identifier}.alert_state
WHERE status = 'firing'
ORDER BY severity = 'page' DESC, starts_at DESC
LIMIT 200
""",
    "alerts_recent": """
SELECT fingerprint, rule, status, severity, labels, summary, starts_at, ends_at, at
FROM {db:Identifier}.alerts FINAL
WHERE at >= {now:DateTime64(3, 'UTC')} - toIntervalSecond({window:UInt32})
ORDER BY at DESC
LIMIT 100
""",
    "as_of": """
SELECT max(last_success_time) FROM system.view_refreshes
WHERE database = {db:String} AND view = 'status_snapshot_mv'
""",
}
