"""Entry point of `dlr worker`: the faust worker with its agents and Prometheus sensors."""

from __future__ import annotations

from typing import Any

import faust
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from streams import enrich
from streams.agents import lifecycle
from streams.app import create_app
from streams.settings import WorkerSettings
from streams.tables import messages_table
from streams.topics import declare

__all__ = ["FAUST_METRICS_PREFIX", "EndOffsetsMonitor", "build", "main"]

#: Prefix of faust's own Prometheus metrics (ours are `dlr_streams_*`).
FAUST_METRICS_PREFIX = "dlr_faust"


class EndOffsetsMonitor(PrometheusMonitor):
    """faust's Prometheus monitor with a cheaper end-offset gauge.

    faust reports the partition's end offset for every record it fetches; the stock
    monitor resolves the labelled gauge each time (~4 us of CPU per record measured,
    85 vs 81 us for the whole worker). Here the gauge of each partition is looked up
    once and then only set. (Per-record hooks are off anyway: see
    `streams._faust.LeanSensors`.)
    """

    def __init__(self, metrics: FaustMetrics, **kwargs: Any) -> None:
        super().__init__(metrics=metrics, **kwargs)
        self.faust_metrics = metrics
        self._end_offset_gauges: dict[Any, Any] = {}

    def track_tp_end_offset(self, tp: Any, offset: int) -> None:
        """Remember the end offset (consumer lag) and set the partition's gauge."""
        self.tp_end_offsets[tp] = offset
        gauge = self._end_offset_gauges.get(tp)
        if gauge is None:
            gauge = self._end_offset_gauges[tp] = (
                self.faust_metrics.topic_partition_end_offset.labels(
                    topic=tp.topic, partition=tp.partition
                )
            )
        gauge.set(offset)


def _prometheus(app: faust.App) -> None:
    """faust's Prometheus metrics (prefix `dlr_faust`) and ours, served at /metrics."""
    app.monitor = EndOffsetsMonitor(metrics=FaustMetrics.create(REGISTRY, FAUST_METRICS_PREFIX))

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        """Prometheus text format: faust's metrics and streams/metrics.py's."""
        # As a header: aiohttp refuses a content_type argument that names a charset.
        return web.bytes(generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


def build(settings: WorkerSettings) -> faust.App:
    """The worker's app: topics, the messages table, the lifecycle agent, metrics."""
    app = create_app(settings)
    topics = declare(app, settings)
    table = messages_table(app, settings)
    lifecycle.register(app, topics, table, settings)
    _prometheus(app)
    return app


def main(settings: WorkerSettings) -> None:
    """Run the worker in the foreground until SIGINT/SIGTERM."""
    level = {"warning": "warn", "critical": "crit"}.get(
        settings.log_level.lower(), settings.log_level.lower()
    )
    app = build(settings)
    enrich.warm()  # libphonenumber's data: at start, not on the first record
    faust.Worker(app, loglevel=level).execute_from_commandline()
