"""Every private faust/aiokafka name `streams/_faust.py` relies on, checked against this install.

An upgrade of faust-streaming, mode-streaming or aiokafka that removes or changes one of
them fails here with a message naming what to re-check, instead of silently changing
what the worker does.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from importlib.metadata import version
from pathlib import Path

import pytest
from faust.sensors import SensorDelegate
from faust.transport import conductor, consumer
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP

from streams import _faust
from streams.app import create_app
from streams.settings import WorkerSettings
from streams.tables import messages_table

#: The versions streams/_faust.py was checked against (pinned in pyproject.toml).
CHECKED = {"faust-streaming": "0.15.3", "mode-streaming": "0.7.1", "aiokafka": "0.14.0"}

#: sha256 of faust 0.15.3's `Consumer._drain_messages` source, which FastConsumer copies.
DRAIN_MESSAGES_SHA256 = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"


@pytest.mark.parametrize("dist", sorted(CHECKED))
def test_installed_versions_are_the_checked_ones(dist: str) -> None:
    assert version(dist) == CHECKED[dist], (
        f"{dist} {version(dist)} is installed; streams/_faust.py was checked against "
        f"{CHECKED[dist]}: re-check every name it lists, then update CHECKED and pyproject.toml"
    )


def test_pyproject_pins_exactly_the_checked_versions() -> None:
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    for dist, pinned in CHECKED.items():
        extra = "[rocksdict]" if dist == "faust-streaming" else ""
        assert f'"{dist}{extra}=={pinned}"' in text, f"pyproject.toml must pin {dist}=={pinned}"


def test_drain_messages_is_still_the_loop_fast_consumer_copies() -> None:
    source = inspect.getsource(consumer.Consumer._drain_messages)
    digest = hashlib.sha256(source.encode()).hexdigest()
    assert digest == DRAIN_MESSAGES_SHA256, (
        "faust changed Consumer._drain_messages: copy the new loop into "
        "streams._faust.FastConsumer (changing only the direct callback), then update the hash"
    )
    assert issubclass(_faust.FastConsumer, aiokafka_driver.Consumer)


@pytest.mark.parametrize(
    "name",
    ["_read_offset", "_add_gap", "_n_acked", "_commit_every", "_stopped", "suspend_flow"],
)
def test_consumer_attributes_the_drain_loop_reads_exist(name: str) -> None:
    import mode

    source = inspect.getsource(consumer.Consumer) + inspect.getsource(mode.Service)
    assert f"self.{name}" in source or f"def {name}" in source, (
        f"faust's Consumer no longer has {name}, used by streams._faust.FastConsumer"
    )


@pytest.mark.parametrize(
    ("name", "parameters"),
    [
        ("_getmany", ["self", "active_partitions", "timeout"]),
        ("perform_seek", ["self"]),
        ("seek_to_committed", ["self"]),
        ("seek", ["self", "partition", "offset"]),
        ("seek_wait", ["self", "partitions"]),
        ("on_partitions_revoked", ["self", "revoked"]),
    ],
)
def test_every_position_change_goes_through_a_method_fast_consumer_wraps(
    name: str, parameters: list[str]
) -> None:
    """FastConsumer records each fetch and each seek (see its docstring): faust must still
    fetch through `_getmany` and move positions only through these methods."""
    method = getattr(aiokafka_driver.Consumer, name)
    assert list(inspect.signature(method).parameters) == parameters, name
    assert name in vars(_faust.FastConsumer), f"FastConsumer no longer wraps {name}"
    drain = inspect.getsource(consumer.Consumer)
    assert "await self._getmany(" in drain, "faust fetches records some other way now"
    for call in ("self._seek(", "seek_to_committed()"):
        assert drain.count(call) == 1, f"faust calls {call} from a new place: wrap it"


def test_a_partition_sought_after_its_batch_was_fetched_is_stale(tmp_path: Path) -> None:
    app = create_app(WorkerSettings(data_dir=tmp_path))
    fast = app.consumer
    assert isinstance(fast, _faust.FastConsumer)
    raw, other = TP("raw", 0), TP("raw", 1)
    fetched_at = fast._serial
    assert not fast._stale(raw, fetched_at)
    fast._reset([raw])  # seek(raw, ...)
    assert fast._stale(raw, fetched_at) and not fast._stale(other, fetched_at)
    assert not fast._stale(raw, fast._serial)  # a batch fetched after the seek is fresh
    fetched_at = fast._serial
    fast._reset()  # perform_seek(): every partition
    assert fast._stale(other, fetched_at) and fast._stale(raw, fetched_at)


async def test_seek_to_committed_moves_back_partitions_without_a_committed_offset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiokafka leaves those where their fetcher is (next test): FastConsumer seeks them to
    0 through faust's own `seek`, and leaves the ones aiokafka did seek alone."""
    fast = create_app(WorkerSettings(data_dir=tmp_path)).consumer
    assert isinstance(fast, _faust.FastConsumer)
    committed = {TP("raw", 0): None, TP("raw", 1): 0, TP("raw", 2): 7}
    sought: list[tuple[TP, int]] = []

    async def aiokafka_seek_to_committed(self: object) -> dict[TP, int | None]:
        return committed

    async def faust_seek(self: object, partition: TP, offset: int) -> None:
        sought.append((partition, offset))

    monkeypatch.setattr(aiokafka_driver.Consumer, "seek_to_committed", aiokafka_seek_to_committed)
    monkeypatch.setattr(aiokafka_driver.Consumer, "seek", faust_seek)
    assert await fast.seek_to_committed() == committed
    assert sought == [(TP("raw", 0), 0), (TP("raw", 1), 0)]


@pytest.mark.integration
async def test_aiokafka_leaves_a_partition_without_a_committed_offset_where_it_is(
    kafka_bootstrap: str, unique: str
) -> None:
    """The fact the override above rests on, on a real broker: after a fetch, aiokafka's
    `seek_to_committed` does not move a partition nobody committed (an upgrade that
    changes this fails here: the override may then go), and a seek to 0 brings the
    fetched records again."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    topic = f"seek.{unique}"
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for n in range(3):
            await producer.send_and_wait(topic, str(n).encode(), partition=0)
    finally:
        await producer.stop()
    tp = TopicPartition(topic, 0)
    reader = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap,
        group_id=f"seek-{unique}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await reader.start()
    try:
        reader.assign([tp])
        fetched: list[bytes] = []
        deadline = asyncio.get_running_loop().time() + 30
        while len(fetched) < 3 and asyncio.get_running_loop().time() < deadline:
            batch = await reader.getmany(tp, timeout_ms=1000)
            fetched += [r.value for r in batch.get(tp, [])]
        assert fetched == [b"0", b"1", b"2"]
        assert await reader.seek_to_committed(tp) == {tp: None}
        assert await reader.position(tp) == 3  # not moved: the fetched records are behind
        reader.seek(tp, 0)
        again = await reader.getmany(tp, timeout_ms=5000)
        assert [r.value for r in again[tp]][:1] == [b"0"]
    finally:
        await reader.stop()


@pytest.mark.parametrize("name", ["_tp_to_callback_lock", "_tp_index"])
def test_conductor_attributes_the_drain_loop_reads_exist(name: str) -> None:
    assert f"self.{name}" in inspect.getsource(conductor.Conductor.__init__), (
        f"faust's Conductor no longer sets {name}, used by streams._faust.FastConsumer"
    )


def test_install_swaps_transport_and_sensors(tmp_path: Path) -> None:
    app = create_app(WorkerSettings(data_dir=tmp_path))
    assert isinstance(app.transport, _faust.FastTransport)
    assert app.transport.Consumer is _faust.FastConsumer
    assert isinstance(app.sensors, _faust.LeanSensors)
    assert isinstance(app.sensors, SensorDelegate)
    buffer = app.producer.buffer
    assert hasattr(buffer, "pending") and hasattr(buffer, "max_messages")


def test_lean_sensors_silence_only_per_record_hooks() -> None:
    per_record = {
        name
        for name, value in vars(_faust.LeanSensors).items()
        if callable(value) and not name.startswith("_")
    }
    delegate = {name for name in vars(SensorDelegate) if not name.startswith("_")}
    assert per_record <= delegate, f"hooks faust no longer has: {per_record - delegate}"
    kept = {"on_commit_initiated", "on_commit_completed", "on_rebalance_start"}
    assert kept <= delegate - per_record


def test_producer_has_ensure_producer() -> None:
    assert callable(getattr(aiokafka_driver.Producer, "_ensure_producer", None)), (
        "faust's aiokafka Producer lost _ensure_producer, used by streams._faust.raw_producer"
    )


def test_rocksdb_store_partition_databases(tmp_path: Path) -> None:
    settings = WorkerSettings(data_dir=tmp_path, topic_partitions=2)
    app = create_app(settings)
    table = messages_table(app, settings)
    assert not _faust.is_assigned(table, 1)
    db = _faust.partition_db(table, 1)
    assert _faust.is_assigned(table, 1) and db is _faust.partition_db(table, 1)
    db.put(b"k", b"v")
    assert db.get(b"k") == b"v"
    assert isinstance(table.data.offset_key, bytes)
    db.close()


#: Private names of faust, mode and aiokafka objects; only streams/_faust.py may use them.
PRIVATE = {
    "_ensure_producer",
    "_getmany",
    "_db_for_partition",
    "_dbs",
    "_drain_messages",
    "_wait_on_metadata",
    "_metadata",
    "_verify_source_topic_partitions",
    "_open_for_partition",
    "_new_store_by_url",
    "_metrics",
    "_tp_to_callback_lock",
    "_tp_index",
}


def test_no_other_module_uses_a_private_faust_or_aiokafka_name() -> None:
    import ast

    root = Path(__file__).resolve().parents[2]
    offenders = []
    for package in ("ingress", "streams", "sinks", "schemas", "deploy"):
        for path in sorted((root / package).rglob("*.py")):
            if path == root / "streams" / "_faust.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Attribute) and node.attr in PRIVATE:
                    offenders.append(f"{path.relative_to(root)}:{node.lineno} .{node.attr}")
    assert not offenders, f"private faust/aiokafka names outside streams/_faust.py: {offenders}"
