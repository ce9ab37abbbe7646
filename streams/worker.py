"""Entry point of `dlr worker`: the faust worker with its agents and Prometheus sensors."""

from __future__ import annotations

import sys
from typing import Any

from faust.sensors.prometheus import PrometheusMonitor, setup_prometheus_sensors

from streams.agents import lifecycle  # noqa: F401  (registers the agent)
from streams.app import app, settings


class EndOffsetsMonitor(PrometheusMonitor):
    """faust's Prometheus monitor with a cheaper end-offset gauge.

    faust reports the partition's end offset for every record it fetches; the stock
    monitor resolves the labelled gauge each time (~4 us of CPU per record measured,
    85 vs 81 us for the whole worker). Here the gauge of each
    partition is looked up once and then only set. (Per-record hooks are off anyway:
    see streams.app.LeanSensors.)
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._end_offset_gauges: dict[Any, Any] = {}

    def track_tp_end_offset(self, tp: Any, offset: int) -> None:
        """Remember the end offset (consumer lag) and set the partition's gauge."""
        self.tp_end_offsets[tp] = offset
        gauge = self._end_offset_gauges.get(tp)
        if gauge is None:
            gauge = self._end_offset_gauges[tp] = self._metrics.topic_partition_end_offset.labels(
                topic=tp.topic, partition=tp.partition
            )
        gauge.set(offset)


def main(argv: list[str] | None = None) -> None:
    """Run the worker in the foreground until SIGINT/SIGTERM."""
    setup_prometheus_sensors(app, name_prefix="dlr_faust")  # metrics + the /metrics page
    app.monitor = EndOffsetsMonitor(metrics=app.monitor._metrics)  # type: ignore[attr-defined]
    level = {"warning": "warn", "critical": "crit"}.get(
        settings.log_level.lower(), settings.log_level.lower()
    )
    sys.argv = ["dlr-worker", "worker", "--loglevel", level, *(argv or [])]
    app.main()


if __name__ == "__main__":
    main()
