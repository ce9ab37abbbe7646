"""Entry point of `dlr worker`: the faust worker with its agents and Prometheus sensors."""

from __future__ import annotations

import sys

from faust.sensors.prometheus import setup_prometheus_sensors

from streams.agents import lifecycle  # noqa: F401  (registers the agent)
from streams.app import app, settings


def main(argv: list[str] | None = None) -> None:
    """Run the worker in the foreground until SIGINT/SIGTERM."""
    setup_prometheus_sensors(app, name_prefix="dlr_faust")
    level = {"warning": "warn", "critical": "crit"}.get(
        settings.log_level.lower(), settings.log_level.lower()
    )
    sys.argv = ["dlr-worker", "worker", "--loglevel", level, *(argv or [])]
    app.main()


if __name__ == "__main__":
    main()
