"""The suppression list and erasure of a real `dlr api` process on the real broker and
ClickHouse: scopes, normalisation, checks under concurrency, export, and an erasure that
leaves no trace of the number in any table, clear or hashed."""

from __future__ import annotations

import asyncio
import getpass
import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from deploy.cli import main as cli_main
from ingress.api.erasure import AUDIT_TABLE
from ingress.api.keys import token_hash
from schemas.events import CanonicalEvent
from schemas.lifecycle import FailureReason, State
from schemas.phone import number_hash
from schemas.suppressions import SuppressionEntry
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import migrate
from sinks.clickhouse.writer import SENDS, EventWriter
from tests.kafka_helpers import create_topics
from tests.pipeline import Pipeline

pytestmark = pytest.mark.integration

SALT = "privacy-api-salt"
#: Entries on the list before the API starts: it must read them all before answering.
SEEDED = 2000
KEYS = {
    "admin": (None, ["suppressions:read", "suppressions:write", "subjects:erase"]),
    "reader": (None, ["suppressions:read"]),
    "writer": (None, ["suppressions:write"]),
    "messages": (None, ["messages:read", "messages:write"]),
    "tenant": ("a", ["suppressions:read", "suppressions:write", "subjects:erase"]),
}


def seeded_number(i: int) -> str:
    return f"+1206555{i:04d}"


def auth(name: str) -> dict[str, str]:
    return {"authorization": f"Bearer token-{name}"}


async def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes | None]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        sent = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
def api(
    kafka_bootstrap: str, clickhouse_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    unique = uuid.uuid4().hex[:10]
    keys = [
        {"id": name, "sha256": token_hash(f"token-{name}"), "scopes": scopes}
        | ({"tenant": tenant} if tenant else {})
        for name, (tenant, scopes) in KEYS.items()
    ]
    p = Pipeline(
        kafka_bootstrap,
        clickhouse_url,
        tmp_path_factory.mktemp("privacy-api"),
        unique,
        DLR_API_KEYS=json.dumps(keys),
        DLR_PII_SALT=SALT,
        DLR_PII_MODE="clear",  # the rows below keep clear copies: the erasure must find them
        DLR_API_RATE_LIMIT_PER_S="0",
    )
    create_topics(p.settings)
    # odd seeds are suppressed, even ones were suppressed and allowed again
    records: list[tuple[bytes, bytes | None]] = []
    for i in range(SEEDED):
        number = seeded_number(i)
        for suppressed in (True,) if i % 2 else (True, False):
            entry = SuppressionEntry.now(
                number_hash=number_hash(number, SALT),
                number=number,
                suppressed=suppressed,
                reason="opted_out" if suppressed else "opted_in",
                source="inbound",
            )
            records.append((entry.key(), entry.to_json()))
    asyncio.run(_produce(p.settings.bootstrap, p.settings.suppressions_topic, records))
    client: Any = connect(p.settings)
    migrate(client, p.settings.clickhouse_database)
    client.close()
    try:
        p.start("api")
        yield p
    finally:
        p.stop()


def call(p: Pipeline, method: str, path: str, key: str = "admin", **kw: Any) -> httpx.Response:
    return httpx.request(method, p.api_url + path, headers=auth(key), timeout=30.0, **kw)


ROUTES = [
    ("GET", "/v1/suppressions/+14155550100", "suppressions:read"),
    ("POST", "/v1/suppressions:check", "suppressions:read"),
    ("GET", "/v1/suppressions", "suppressions:read"),
    ("PUT", "/v1/suppressions/+14155550100", "suppressions:write"),
    ("DELETE", "/v1/suppressions/+14155550100", "suppressions:write"),
    ("DELETE", "/v1/subjects/+14155550100", "subjects:erase"),
]


@pytest.mark.parametrize(("method", "path", "scope"), ROUTES)
def test_keys_without_the_routes_scope_get_403(
    api: Pipeline, method: str, path: str, scope: str
) -> None:
    body: dict[str, Any] = {"json": {"numbers": []}} if method == "POST" else {}
    for name, (_, scopes) in KEYS.items():
        response = call(api, method, path, name, **body)
        if scope in scopes:
            assert response.status_code != 403 or name == "tenant", (name, response.text)
        else:
            assert response.status_code == 403, (name, response.text)
            assert response.json()["error"] == "insufficient_scope"
    assert call(api, method, path, "nobody", **body).status_code == 401


def test_a_tenant_key_checks_but_never_changes_exports_or_erases(api: Pipeline) -> None:
    assert call(api, "GET", "/v1/suppressions/+12065550001", "tenant").status_code == 200
    for method, path, _ in ROUTES:
        if method == "PUT" or (method == "DELETE") or path == "/v1/suppressions":
            response = call(api, method, path, "tenant")
            assert response.status_code == 403, (method, path, response.text)
            assert response.json()["error"] == "tenant_mismatch"


def test_the_list_was_read_before_the_first_answer(api: Pipeline) -> None:
    for i in (0, 1, SEEDED - 2, SEEDED - 1):
        answer = call(api, "GET", f"/v1/suppressions/{seeded_number(i)}").json()
        assert answer["suppressed"] is bool(i % 2), answer
    metrics = httpx.get(api.api_url + "/metrics").text
    assert f"dlr_api_suppressed_numbers {SEEDED // 2}.0" in metrics


def test_every_written_form_is_one_entry_and_removal_allows_again(api: Pipeline) -> None:
    put = call(
        api, "PUT", "/v1/suppressions/1 (415) 555-0142", json={"reason": "complaint", "actor": "al"}
    )
    assert put.status_code == 200, put.text
    assert (put.json()["number"], put.json()["actor"]) == ("+14155550142", "key:admin/al")
    for written in ("+14155550142", "14155550142", "tel:+1-415-555-0142"):
        answer = call(api, "GET", f"/v1/suppressions/{written}").json()
        assert answer["suppressed"] is True and answer["reason"] == "complaint", written
        assert answer["number"] == "+14155550142"
    assert call(api, "DELETE", "/v1/suppressions/+1.415.555.0142").status_code == 200
    answer = call(api, "GET", "/v1/suppressions/+14155550142").json()
    assert answer == {"number": "+14155550142", "suppressed": False}
    bad = call(api, "GET", "/v1/suppressions/0415 555 0142")
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_number"


def test_batch_check_answers_each_number_in_order(api: Pipeline) -> None:
    numbers = [seeded_number(1), "not a number", seeded_number(2), seeded_number(3)]
    response = call(api, "POST", "/v1/suppressions:check", json={"numbers": numbers})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["suppressed"] for r in results] == [True, None, False, True]
    assert results[1]["error"] == "invalid_number"
    too_many = call(api, "POST", "/v1/suppressions:check", json={"numbers": ["+1"] * 1001})
    assert too_many.status_code == 413


def test_checks_under_concurrency_see_the_list_and_the_changes_made_meanwhile(
    api: Pipeline,
) -> None:
    """Eight threads check seeded numbers while another suppresses and allows new ones;
    every answer about a seeded number is right, and each changed number ends as its
    last change says (read from this process at once, from the topic eventually)."""
    wrong: list[str] = []
    changed = [f"+1312555{i:04d}" for i in range(40)]
    stop = threading.Event()

    def checker(seed: int) -> int:
        done = 0
        with httpx.Client(base_url=api.api_url, headers=auth("reader")) as client:
            for k in range(150):
                i = (seed * 7919 + k * 31) % SEEDED
                answer = client.get(f"/v1/suppressions/{seeded_number(i)}").json()
                if answer.get("suppressed") is not bool(i % 2):
                    wrong.append(f"{i}: {answer}")
                done += 1
        return done

    def changer() -> None:
        with httpx.Client(base_url=api.api_url, headers=auth("writer")) as client:
            for round_ in range(3):
                for number in changed:
                    method = "PUT" if round_ != 1 else "DELETE"
                    assert client.request(method, f"/v1/suppressions/{number}").status_code == 200
        stop.set()

    with ThreadPoolExecutor(9) as pool:
        change = pool.submit(changer)
        counts = list(pool.map(checker, range(8)))
        change.result(timeout=120)
    assert stop.is_set()
    assert sum(counts) == 8 * 150
    assert wrong == []
    answers = call(api, "POST", "/v1/suppressions:check", json={"numbers": changed}).json()
    assert all(r["suppressed"] is True for r in answers["results"])


def _lines(response: httpx.Response) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in response.text.splitlines() if line]


def test_export_gives_changes_since_a_time_with_a_cursor(api: Pipeline) -> None:
    everything = call(api, "GET", "/v1/suppressions")
    assert everything.status_code == 200
    rows = _lines(everything)
    assert len({r["number_hash"] for r in rows}) == len(rows) >= SEEDED
    cursor = everything.headers["x-export-until"]
    assert call(api, "PUT", "/v1/suppressions/+16175550123", json={"reason": "legal"}).is_success
    newer = call(api, "GET", "/v1/suppressions", params={"since": cursor})
    assert [(r["number"], r["reason"]) for r in _lines(newer)] == [("+16175550123", "legal")]
    csv = call(api, "GET", "/v1/suppressions", params={"since": cursor, "format": "csv"})
    header, row = csv.text.splitlines()
    assert header.startswith("number,number_hash,suppressed,reason")
    assert row.startswith("+16175550123,") and ",true,legal," in row
    bad = call(api, "GET", "/v1/suppressions", params={"since": "yesterday"})
    assert bad.status_code == 422


# -- erasure ---------------------------------------------------------------------------------

ERASED = "+447700900123"
KEPT = "+447700900456"


def _event(
    mid: str, number: str, reason: FailureReason | None = None, sender: str = "+12065550123"
) -> dict[str, Any]:
    now = datetime.now(UTC) - timedelta(minutes=5)
    return CanonicalEvent(
        event_id=uuid.uuid4().hex,
        message_id=mid,
        provider="generic",
        provider_message_id=mid.split(":", 1)[1],
        state=State.REJECTED if reason else State.DELIVERED,
        current_state=State.REJECTED if reason else State.DELIVERED,
        previous_state=None,
        transition="advanced",
        is_final=True,
        failure_reason=reason,
        provider_status="rejected" if reason else "delivered",
        provider_error_code=None,
        provider_error_text=None,
        mapped=True,
        recipient=number,
        sender=sender,
        carrier="EE",
        mcc=None,
        mnc=None,
        country="GB",
        region="Northern Europe",
        campaign="otp",
        tenant=None,
        client_ref=f"ref-{mid}",
        segments=1,
        price=None,
        currency=None,
        sequence=None,
        provider_timestamp=now,
        received_at=now,
        emitted_at=now,
        raw_sha256="0" * 64,
    ).to_dict()


def _registration(mid: str, number: str, version: int) -> dict[str, Any]:
    now = (datetime.now(UTC) - timedelta(minutes=6)).isoformat()
    return {
        "message_id": mid,
        "provider": "generic",
        "provider_message_id": mid.split(":", 1)[1],
        "recipient": number,
        "sender": "ACME",
        "campaign": "otp",
        "tenant": None,
        "client_ref": f"ref-{mid}",
        "submitted_at": now,
        "consent": {"source": "signup", "obtained_at": now, "reference": None},
        "parts": None,
        "country": "GB",
        "region": "Northern Europe",
        "registered_at": now,
        "key_id": "shop",
        "digest": "d" * 64,
        "version": version,
    }


def _traces(client: Any, db: str, values: list[str]) -> dict[str, int]:
    """`<table>.<column>` -> rows holding any of `values`, over every column of every table
    and view of the database that can hold text (the audit aside)."""
    columns = client.query(
        "SELECT table, name, type FROM system.columns WHERE database = {db:String} "
        "AND table != {audit:String} AND table != 'schema_migrations' "
        "AND NOT startsWith(table, '.tmp')",  # a refresh's short-lived copy
        parameters={"db": db, "audit": AUDIT_TABLE},
    ).result_rows
    found: dict[str, int] = {}
    for table, column, kind in columns:
        if "String" not in kind or "Map" in kind or "Tuple" in kind:
            continue
        if kind.startswith("Array"):
            where = f"hasAny(`{column}`, {{v:Array(String)}})"
        elif kind.startswith("AggregateFunction"):  # messages.sender: argMax state
            where = f"toString(finalizeAggregation(`{column}`)) IN {{v:Array(String)}}"
        else:
            where = f"toString(`{column}`) IN {{v:Array(String)}}"
        n = int(
            client.command(
                f"SELECT count() FROM `{db}`.`{table}` WHERE {where}", parameters={"v": values}
            )
        )
        if n:
            found[f"{table}.{column}"] = n
    return found


def test_erasure_leaves_no_trace_keeps_the_opt_out_as_a_hash_and_is_audited(
    api: Pipeline,
) -> None:
    settings = api.settings
    db = settings.clickhouse_database
    client: Any = connect(settings)
    writer = EventWriter(client, db, pii_mode="clear", salt=SALT)
    writer.write(
        [
            _event("generic:e1", ERASED),
            _event("generic:e2", ERASED, FailureReason.OPTED_OUT),
            _event("generic:k1", KEPT),
            # the number as a sender too (a person's number replying through us)
            _event("generic:e3", KEPT, sender=ERASED),
        ]
    )
    EventWriter(client, db, pii_mode="clear", salt=SALT, spec=SENDS).write(
        [
            _registration("generic:e1", ERASED, 2**63 - 1),
            _registration("generic:k1", KEPT, 2**63 - 2),
        ]
    )
    erased = [ERASED, number_hash(ERASED, SALT)]
    kept = [KEPT, number_hash(KEPT, SALT)]
    before = _traces(client, db, erased)
    assert {
        "events.recipient", "events.recipient_clear", "sends.recipient", "events.sender",
        "events.sender_clear", "messages.sender",
    } <= set(before)  # fmt: skip
    assert call(api, "PUT", f"/v1/suppressions/{ERASED}", json={"reason": "opted_out"}).is_success

    response = call(
        api, "DELETE", f"/v1/subjects/{ERASED[:3]} {ERASED[3:]}", params={"actor": "dpo"}
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["number"] == ERASED and report["number_hash"] == erased[1]
    assert report["clickhouse"]["cleared"]["events"]["recipient"] == 2
    assert report["clickhouse"]["cleared"]["events"]["recipient_clear"] == 2
    assert report["clickhouse"]["cleared"]["sends"]["recipient"] == 1
    assert report["clickhouse"]["cleared"]["events"]["sender"] == 1
    assert report["clickhouse"]["cleared"]["messages"]["sender"] == 1  # an argMax state
    assert report["clickhouse"]["remaining"] == 0
    assert report["suppression"] == "kept_as_hash"
    assert any(settings.raw_topic in line for line in report["retained"])

    assert _traces(client, db, erased) == {}
    assert {"events.recipient", "sends.recipient"} <= set(_traces(client, db, kept))
    assert int(client.command(f"SELECT count() FROM `{db}`.events")) == 4  # rows stay: analytics
    answer = call(api, "GET", f"/v1/suppressions/{ERASED}").json()
    assert answer["suppressed"] is True and answer["reason"] == "opted_out"
    exported = {r["number_hash"]: r for r in _lines(call(api, "GET", "/v1/suppressions"))}
    row = exported[erased[1]]
    assert (row["number"], row["suppressed"], row["erased"]) == (None, True, True)
    audit = client.query(
        f"SELECT actor, source, cleared, remaining, suppression, outcome FROM `{db}`.{AUDIT_TABLE} "
        "WHERE number_hash = {h:String}",
        parameters={"h": erased[1]},
    ).result_rows
    assert [(a, s, c["events.recipient"], r, sup, o) for a, s, c, r, sup, o in audit] == [
        ("key:admin/dpo", "api", 2, 0, "kept_as_hash", "done")
    ]

    again = call(api, "DELETE", f"/v1/subjects/{ERASED}").json()
    assert again["clickhouse"]["total"] == 0 and again["clickhouse"]["remaining"] == 0
    assert again["suppression"] == "kept_as_hash"
    assert call(api, "GET", f"/v1/suppressions/{ERASED}").json()["suppressed"] is True
    client.close()


def test_erasing_an_unknown_number_changes_nothing_and_says_so(api: Pipeline) -> None:
    client: Any = connect(api.settings)
    db = api.settings.clickhouse_database
    rows_before = int(client.command(f"SELECT count() FROM `{db}`.events"))
    response = call(api, "DELETE", "/v1/subjects/+61491570006")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["clickhouse"]["total"] == 0 and report["suppression"] == "none"
    assert int(client.command(f"SELECT count() FROM `{db}`.events")) == rows_before
    audited = client.command(
        f"SELECT count() FROM `{db}`.{AUDIT_TABLE} WHERE number_hash = {{h:String}}",
        parameters={"h": number_hash("+61491570006", SALT)},
    )
    assert int(audited) == 1
    client.close()


def test_the_api_process_logs_no_number(api: Pipeline) -> None:
    log = api.log_tail("api", size=10**7)
    for number in (ERASED, "+14155550142", "+16175550123"):
        assert number[1:] not in log


# -- the terminal: dlr suppressions, dlr erase --------------------------------------------------

CLI_NUMBER = "+13125550147"


def dlr(
    api: Pipeline, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, str]:
    """`dlr <argv>` in this process with the pipeline's settings: (exit status, stdout)."""
    for name, value in api.env_vars.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    status = cli_main(list(argv))
    return status, capsys.readouterr().out


def answer_becomes(api: Pipeline, number: str, suppressed: bool, timeout: float = 30.0) -> Any:
    """The API's answer for `number`, polled until `suppressed` is what it says: the API
    follows the topic the CLI wrote to (another process)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = call(api, "GET", f"/v1/suppressions/{number}").json()
        if answer["suppressed"] is suppressed or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def test_the_cli_changes_what_the_api_answers_exports_and_erases(
    api: Pipeline,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    since = datetime.now(UTC).isoformat()
    status, out = dlr(
        api, monkeypatch, capsys, "suppressions", "add", "+1 (312) 555-0147",
        "--reason", "complaint", "--actor", "ops",
    )  # fmt: skip
    assert status == 0 and out.startswith(f"{CLI_NUMBER}  suppressed (reason complaint")
    status, out = dlr(api, monkeypatch, capsys, "suppressions", "check", "13125550147", "--format",
                      "json")  # fmt: skip
    assert status == 1  # a number is suppressed
    checked = orjson.loads(out)
    assert (checked["number"], checked["suppressed"], checked["reason"], checked["source"]) == (
        CLI_NUMBER, True, "complaint", "cli",
    )  # fmt: skip
    answer = answer_becomes(api, CLI_NUMBER, True)
    assert (answer["suppressed"], answer["reason"], answer["source"]) == (True, "complaint", "cli")

    exported = tmp_path / "export.csv"
    status, _ = dlr(api, monkeypatch, capsys, "suppressions", "export", "--since", since,
                    "--format", "csv", "--output", str(exported))  # fmt: skip
    header, *rows = exported.read_text().splitlines()
    assert status == 0 and header.startswith("number,number_hash,suppressed,reason,source")
    [row] = [r for r in rows if r.startswith(CLI_NUMBER + ",")]
    assert ",true,complaint,cli," in row and f"cli:{getpass.getuser()}/ops" in row

    status, out = dlr(api, monkeypatch, capsys, "suppressions", "remove", CLI_NUMBER)
    assert status == 0 and "allowed again" in out
    status, out = dlr(api, monkeypatch, capsys, "suppressions", "check", CLI_NUMBER)
    assert (status, out) == (0, f"{CLI_NUMBER}  may be sent to\n")
    assert answer_becomes(api, CLI_NUMBER, False)["suppressed"] is False

    status, out = dlr(api, monkeypatch, capsys, "erase", "--phone", "+1 312 555 0147", "--yes",
                      "--actor", "dpo", "--format", "json")  # fmt: skip
    report = orjson.loads(out)
    assert status == 0 and report["number_hash"] == number_hash(CLI_NUMBER, SALT)
    assert report["suppression"] == "removed"  # allowed again: no opt-out to keep
    assert any(api.settings.raw_topic in line for line in report["retained"])
    status, out = dlr(api, monkeypatch, capsys, "suppressions", "export", "--since", since)
    lines = [orjson.loads(line) for line in out.splitlines()]
    assert CLI_NUMBER not in out and [r["erased"] for r in lines if r["number_hash"] ==
                                      report["number_hash"]] == [True]  # fmt: skip
    client: Any = connect(api.settings)
    audit = client.query(
        f"SELECT actor, source, suppression FROM `{api.settings.clickhouse_database}`."
        f"{AUDIT_TABLE} WHERE number_hash = {{h:String}}",
        parameters={"h": report["number_hash"]},
    ).result_rows
    client.close()
    assert audit == [(f"cli:{getpass.getuser()}/dpo", "cli", "removed")]

    for argv in (("suppressions", "check", "call me"), ("erase", "--phone", "12", "--yes")):
        assert dlr(api, monkeypatch, capsys, *argv)[0] == 2
