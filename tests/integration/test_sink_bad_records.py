"""Records of dlr.status.v1 that are not canonical events go to the dead letter; the sink
keeps going and every valid event around them lands in ClickHouse (real broker, real
ClickHouse, the `dlr sink` process).

Before the sink built its columns from the wire records, a value of the wrong JSON type
(`"price": "abc"`) raised from the encoder out of the sink's loop: the process died and,
the batch being uncommitted, died again on every restart.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from schemas.lifecycle import State
from tests.kafka_helpers import read_all, uncommitted
from tests.pipeline import Pipeline
from tests.polling import wait_for
from tests.sinks.clickhouse.test_rows import sample
from tests.workload import produce

pytestmark = pytest.mark.integration

PIPELINE_ENV = {"DLR_SINK_BATCH_ROWS": "200"}

VALID = 600
#: A phone number in the wrong field: the encoder's error quotes it, no log may.
PHONE = "+44 7700 900555"  # float() refuses it, as it would "abc"
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def valid_record(i: int) -> dict[str, Any]:
    event = sample(
        event_id=f"valid-{i:05d}",
        message_id=f"generic:m{i}",
        provider_message_id=f"m{i}",
        state=State.SENT if i % 2 else State.DELIVERED,
        current_state=State.SENT if i % 2 else State.DELIVERED,
        failure_reason=None,
        received_at=T0 + timedelta(milliseconds=i),
        emitted_at=T0 + timedelta(milliseconds=i, seconds=1),
    )
    return orjson.loads(event.to_json())  # type: ignore[no-any-return]


def broken(i: int, **changes: Any) -> bytes:
    record = valid_record(i)
    record["event_id"] = f"broken-{i:05d}"
    for name, value in changes.items():
        if value is KeyError:
            del record[name]
        else:
            record[name] = value
    return orjson.dumps(record)


#: (value on the topic, dead-letter reason); spread through the valid records.
BAD: list[tuple[bytes, str]] = [
    (b"not json at all", "sink_unparseable"),
    (b"[1, 2, 3]", "sink_unparseable"),
    (broken(1, carrier=KeyError), "sink_invalid"),  # a required field missing
    (broken(2, state="arrived"), "sink_invalid"),  # not a canonical state
    (broken(3, received_at="yesterday"), "sink_invalid"),  # not a time
    (broken(4, price=PHONE), "sink_invalid"),  # wrong JSON type: found by the encoder
    (broken(5, carrier=5), "sink_invalid"),  # wrong JSON type for a string column
    (broken(6, campaign=["a", "list"]), "sink_invalid"),  # unhashable where a string goes
]


def test_bad_records_are_dead_lettered_and_the_sink_keeps_going(pipeline: Pipeline) -> None:
    s = pipeline.settings
    values = [orjson.dumps(valid_record(i)) for i in range(VALID)]
    for n, (value, _) in enumerate(BAD):  # bad records inside batches of valid ones
        values.insert((n + 1) * VALID // (len(BAD) + 1), value)
    pipeline.start("sink")
    produce(s.bootstrap, s.status_topic, [(b"k%d" % i, v) for i, v in enumerate(values)])

    assert pipeline.wait_rows(VALID, timeout=90) == VALID
    dead = read_all(s.bootstrap, s.deadletter_topic, expect=len(BAD), timeout=30)
    letters = [orjson.loads(r.value or b"") for r in dead]
    assert Counter(d["reason"] for d in letters) == Counter(reason for _, reason in BAD)
    invalid_ids = sorted(d["event"]["event_id"] for d in letters if d["reason"] == "sink_invalid")
    assert invalid_ids == [f"broken-{i:05d}" for i in range(1, 7)]
    assert all(d["detail"] for d in letters)
    unparseable = sorted(d["raw"] for d in letters if d["reason"] == "sink_unparseable")
    assert unparseable == sorted(v.decode() for v, r in BAD if r == "sink_unparseable")

    client = pipeline.clickhouse()
    db = s.clickhouse_database
    ids = {r[0] for r in client.query(f"SELECT event_id FROM {db}.events").result_rows}
    assert ids == {f"valid-{i:05d}" for i in range(VALID)}, "only the valid events, all of them"
    invalid = wait_for(
        lambda: pipeline.sink_metric("dlr_sink_invalid_total"),
        lambda n: n >= len(BAD),
        timeout=10,
        what="every bad record counted",
    )
    assert invalid == len(BAD)
    assert pipeline.sink_metric("dlr_sink_rows_total") == VALID
    assert pipeline.procs["sink"].poll() is None, pipeline.log_tail("sink")
    assert PHONE[1:] not in pipeline.log_tail("sink", size=1_000_000)
    assert httpx.get(pipeline.health_url("sink")).status_code == 200
    # committed past the bad records: a restarted sink would not meet them again
    wait_for(
        lambda: uncommitted(s.bootstrap, s.sink_group, s.status_topic),
        lambda n: n == 0,
        timeout=10,
        what="the sink committed past every record",
    )
