"""A worker's topic declaration while the broker is down: it waits, and declares once it is back.

A worker declares its topics while it starts. faust alone gives up on the first
NodeNotReadyError, so a broker restarting during a worker's start stopped the worker
(`PatientProducer` in streams/_faust.py). Here the real session broker is stopped after
faust's producer has connected, a declaration is started, and the broker is started again
(`restartable_kafka`: proven back, with every topic, afterwards).
"""

from __future__ import annotations

import asyncio
import time

import faust
import pytest

from deploy.local import kafka
from deploy.settings import Settings
from deploy.topics import topic_names
from streams import _faust
from tests.conftest import KAFKA_RESTART_TIMEOUT_S

pytestmark = [pytest.mark.integration, pytest.mark.heavy]


@pytest.mark.timeout(900)
async def test_topic_declaration_waits_out_a_broker_outage(
    restartable_kafka: Settings, unique: str
) -> None:
    app = faust.App(f"patient-{unique}", broker=f"kafka://{restartable_kafka.bootstrap}")
    _faust.install(app)
    producer = app.producer
    assert isinstance(producer, _faust.PatientProducer)
    topic = f"patient.{unique}"
    await producer.start()
    try:
        await asyncio.to_thread(kafka.stop, restartable_kafka)
        declaring = asyncio.create_task(producer.create_topic(topic, 3, 1))
        deadline = time.monotonic() + 120
        while producer.retries < 2 and not declaring.done():
            assert time.monotonic() < deadline, "no retried declaration within 120 s"
            await asyncio.sleep(0.2)
        assert not declaring.done(), f"the declaration ended while the broker was down: {declaring}"
        await asyncio.to_thread(kafka.start, restartable_kafka, timeout=KAFKA_RESTART_TIMEOUT_S)
        await asyncio.wait_for(declaring, timeout=_faust.DECLARE_WAIT_S)
    finally:
        await producer.stop()
    # The controller acknowledged the creation; a broker just restarted may list it in its
    # metadata a moment later (once, in CI, not at the first look).
    deadline = time.monotonic() + 30
    while topic not in (names := await topic_names(restartable_kafka.bootstrap)):
        assert time.monotonic() < deadline, f"{topic} not listed within 30 s: {sorted(names)[:5]}"
        await asyncio.sleep(0.5)
