-- The audit of erasures by phone number (`dlr erase`, `DELETE /v1/subjects/<number>`,
-- ingress/api/erasure.py): one row per run, written when it finished. What a compliance
-- officer shows when asked whether a data subject's request was carried out.
--
-- * number_hash: the salted SHA-256 of the E.164 number (schemas/phone.py), never the
--   number itself; the same hash the tables held, so a later run for the same number is
--   found next to the first one (ORDER BY number_hash).
-- * actor: who asked (`key:<api key id>[/<name given>]`, `cli:<user>[/<name given>]`);
--   source: `api` or `cli`.
-- * cleared: `<table>.<column>` -> values found and removed; remaining: values still
--   matching after the run (0 unless rows arrived meanwhile: run it again).
-- * suppression: `kept_as_hash` (the number had opted out: the entry stays without the
--   number, the legal basis for keeping it), `removed` (a tombstone), `none`.
-- * kafka: the records written (suppression entry or tombstone, changelog tombstone);
--   raw_retained_until: the latest time dlr.raw.v1 may still hold a raw request with the
--   number (its retention, stated in the run's output too).
-- * Kept {audit_retention_days} days (DLR_ERASURE_AUDIT_DAYS): the proof outlives the data.
CREATE TABLE IF NOT EXISTS {db}.erasure_audit
(
    erasure_id         UUID,
    number_hash        String,
    requested_at       DateTime64(3, 'UTC'),
    finished_at        DateTime64(3, 'UTC'),
    actor              String,
    source             LowCardinality(String),
    pii_mode           LowCardinality(String),
    cleared            Map(String, UInt64),
    remaining          UInt64,
    suppression        LowCardinality(String),
    kafka              Array(String),
    raw_retained_until DateTime64(3, 'UTC'),
    outcome            LowCardinality(String),
    detail             String
)
ENGINE = MergeTree
ORDER BY (number_hash, requested_at)
TTL toDateTime(requested_at) + INTERVAL {audit_retention_days} DAY DELETE;
