-- Alert history: every record `dlr alerts` wrote to dlr.alerts.v1 (sinks/alerts/), one row
-- per record id. A state change is written twice: first when it happens (`delivered` =
-- false), again with the webhook outcomes once its notifications ended (`delivered` =
-- true, `delivery` endpoint -> outcome); ReplacingMergeTree(delivered) keeps the later.
-- Read the current state of an alert as the latest row of its fingerprint by `at`
-- (view alert_state); the built-in dashboard and the Grafana dashboards do.
CREATE TABLE IF NOT EXISTS {db}.alerts
(
    id           String,
    fingerprint  String,
    rule         LowCardinality(String),
    status       LowCardinality(String),
    severity     LowCardinality(String),
    labels       Map(String, String),
    value        Float64,
    threshold    Float64,
    baseline     Nullable(Float64),
    summary      String,
    runbook      String,
    starts_at    DateTime64(3, 'UTC'),
    ends_at      Nullable(DateTime64(3, 'UTC')),
    at           DateTime64(3, 'UTC'),
    notification UInt32,
    delivered    UInt8,
    delivery     Map(String, String),
    inserted_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(delivered)
ORDER BY (fingerprint, id)
TTL toDateTime(at) + INTERVAL {retention_days} DAY DELETE;

-- The latest record of each alert: status firing = active now.
CREATE OR REPLACE VIEW {db}.alert_state AS
SELECT
    fingerprint,
    argMax(rule, (at, delivered)) AS rule,
    argMax(status, (at, delivered)) AS status,
    argMax(severity, (at, delivered)) AS severity,
    argMax(labels, (at, delivered)) AS labels,
    argMax(value, (at, delivered)) AS value,
    argMax(threshold, (at, delivered)) AS threshold,
    argMax(summary, (at, delivered)) AS summary,
    argMax(runbook, (at, delivered)) AS runbook,
    argMax(starts_at, (at, delivered)) AS starts_at,
    argMax(ends_at, (at, delivered)) AS ends_at,
    max(at) AS updated_at
FROM {db}.alerts
GROUP BY fingerprint;
