"""`dlr alerts`: rules over ClickHouse and the services' /metrics, alerts that reach someone.

- `settings.py`  `AlertSettings` (`DLR_ALERT_*`)
- `model.py`     rules, observations, fingerprints, the record of a state change
- `tracker.py`   the state machine (pending, firing, resolved, re-notify; restore)
- `business.py`  delivery-rate drop, failure-reason spike, silence, stopped deliveries,
                 stuck messages (SQL in `queries/`)
- `health.py`    5xx, broker_unavailable, 401 bursts, consumer lag, dead letters, targets
- `service.py`   the process: evaluate, record on `dlr.alerts.v1`, notify through
                 `sinks.webhooks`, push to Alertmanager, copy the history to ClickHouse
"""
