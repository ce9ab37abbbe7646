"""Malformed and forged requests against the real app: never a 5xx, never produced.

Hypothesis sends a few thousand requests in total to the ingress in local mode (development
credentials for every provider, callback tokens enabled, a small body limit): random
methods, paths under /webhooks/, signature/timestamp headers with random values, content
types, random bytes/JSON/form bodies, oversize and chunked bodies, and near misses (real
fixture requests signed with a key the app does not know, then mutated). Every answer
must be a documented 4xx with the JSON error shape, and nothing may reach the producer (an
in-process double, `tests/doubles.py`, that records what the app hands it).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_from_bytes, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from deploy.settings import Settings
from deploy.tools import samples as provider_fixtures
from ingress.app import create_app
from ingress.providers import PROVIDERS
from ingress.providers._contract import InboundRequest
from tests.doubles import RecordingProducer

BASE_URL = "http://testserver"
MAX_BODY = 4096
TOKEN_SECRET = "fuzz-token-secret"

#: Every documented error code and its status (README "Ingress" table).
CODES: dict[str, int] = {
    "malformed_payload": 400,
    "missing_header": 401,
    "stale_timestamp": 401,
    "bad_signature": 401,
    "no_credentials": 401,
    "verification_failed": 401,
    "forbidden_source": 403,
    "unknown_provider": 404,
    "unknown_token": 404,
    "not_found": 404,
    "method_not_allowed": 405,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "invalid_payload": 422,
    "rate_limited": 429,
}

FIXTURES = [
    f for p in provider_fixtures.providers() if p in PROVIDERS for f in provider_fixtures.load(p)
]
#: Keys the app does not know (a second set of development credentials per provider).
FOREIGN_KEYS = {name: adapter.dev_credentials()[1] for name, adapter in PROVIDERS.items()}


def _signing_headers() -> list[str]:
    """Header names each provider's `sign()` adds, found by signing one of its fixtures."""
    names = {"authorization", "webhook-id", "x-amz-sns-message-type"}
    now = int(time.time())
    for fixture in FIXTURES:
        unsigned = fixture.request(BASE_URL)
        signed = PROVIDERS[fixture.provider].sign(unsigned, FOREIGN_KEYS[fixture.provider], now)
        names |= set(signed.headers) - set(unsigned.headers)
    return sorted(names)


SIGNING_HEADERS = _signing_headers()
CONTENT_TYPES = sorted(
    {t for adapter in PROVIDERS.values() for t in adapter.CONTENT_TYPES}
    | {"text/xml", "multipart/form-data; boundary=x", "application/json; charset=utf-8", ""}
)


@dataclass
class Fuzz:
    """The app under test and what it did besides answering.

    Requests go straight to the ASGI app from one event loop (httpx's ASGITransport): no
    server thread per request, so thousands of examples take seconds, not minutes.
    """

    client: httpx.AsyncClient
    loop: asyncio.AbstractEventLoop
    settings: Settings
    producer: RecordingProducer
    outbound: list[str] = field(default_factory=list)
    sent: int = 0

    def assert_nothing_produced(self) -> None:
        """Nothing unverified reached Kafka, and nothing was fetched or confirmed."""
        assert self.producer.records == []
        assert self.outbound == []

    def check(self, method: str, url: str, headers: Any, content: Any) -> None:
        """Send one request and assert it is refused with a documented JSON error."""
        response = self.loop.run_until_complete(self._send(method, url, headers, content))
        self.sent += 1
        context = (method, url, response.status_code, response.text[:300])
        assert 400 <= response.status_code < 500, context
        if method == "HEAD":  # no body by definition
            return
        assert response.headers["content-type"].startswith("application/json"), context
        body = response.json()
        assert isinstance(body, dict) and set(body) == {"error", "detail"}, context
        assert isinstance(body["detail"], str), context
        assert CODES.get(body["error"]) == response.status_code, context
        if response.status_code == 405:
            assert response.headers.get("allow"), context

    async def _send(self, method: str, url: str, headers: Any, content: Any) -> httpx.Response:
        if content is not None and not isinstance(content, bytes | str):
            chunks = list(content)  # a body without content-length, sent in chunks

            async def stream() -> AsyncIterator[bytes]:
                for chunk in chunks:
                    yield chunk

            content = stream()
        return await self.client.request(method, url, headers=headers, content=content)


@pytest.fixture
def fuzz(tmp_path: Path) -> Iterator[Fuzz]:
    config = Settings(
        kafka_bootstrap="127.0.0.1:1",  # never reached: the producer is a double
        data_dir=tmp_path,
        dev_secrets=True,
        max_body_bytes=MAX_BODY,
        callback_token_secrets=TOKEN_SECRET,
        produce_timeout_s=5.0,
    )
    producer = RecordingProducer()
    app = create_app(config, producer=producer)
    loop = asyncio.new_event_loop()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL, follow_redirects=True
    )  # as TestClient does
    f = Fuzz(client=client, loop=loop, settings=config, producer=producer)

    def outbound(request: httpx.Request) -> httpx.Response:
        f.outbound.append(str(request.url))
        return httpx.Response(599)

    app.state.ingress.http = httpx.AsyncClient(transport=httpx.MockTransport(outbound))
    lifespan = app.router.lifespan_context(app)
    loop.run_until_complete(lifespan.__aenter__())
    try:
        yield f
    finally:
        loop.run_until_complete(lifespan.__aexit__(None, None, None))
        loop.run_until_complete(client.aclose())
        loop.close()
    assert producer.started == producer.stopped == 1


FUZZ = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- strategies ------------------------------------------------------------------------

methods = st.one_of(
    st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
    st.from_regex(r"\A[A-Z]{1,12}\Z"),
)
printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)
#: Header values as latin-1 bytes (what HTTP allows besides ASCII), no control characters.
latin1 = st.binary(max_size=80).map(lambda b: bytes(c for c in b if 0x20 <= c != 0x7F) or b"x")
numbers = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e999", "", " ", "0x10", "²", "1_000", "१२"]),
    st.just(str(int(time.time()))),
)
signature_values = st.one_of(
    printable,
    numbers,
    st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()),
    st.binary(max_size=64).map(lambda b: "v1=" + b.hex()),
    st.binary(max_size=64).map(lambda b: "v1," + base64.b64encode(b).decode()),
    st.binary(max_size=48).map(lambda b: "Basic " + base64.b64encode(b).decode()),
    st.lists(printable, max_size=3).map(lambda parts: ".".join(parts)),  # JWT-ish
)
header_value = st.one_of(signature_values.map(str.encode), latin1)
#: `<head>.<mac>` like a callback token (the route `/webhooks/{provider}/{token}`).
token_like = st.tuples(st.text(max_size=30), st.text(max_size=30)).map(
    lambda t: quote(t[0], safe="") + "." + quote(t[1], safe="")
)
segment = st.one_of(
    st.sampled_from([*PROVIDERS, "unknown", "", ".", "..", "%2F"]),
    token_like,
    st.text(max_size=30).map(lambda s: quote(s, safe="")),
    st.binary(max_size=20).map(lambda b: quote_from_bytes(b, safe="")),
    st.text(st.characters(codec="utf-8"), max_size=40).map(
        lambda s: quote(s, safe=".")
    ),  # token-like, may contain non-ASCII after decoding
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
form_pairs = st.lists(st.tuples(st.text(max_size=20), st.text(max_size=40)), max_size=8)
bodies = st.one_of(
    st.binary(max_size=600),
    json_values.map(lambda v: json.dumps(v).encode()),  # big ints, NaN: json, not orjson
    form_pairs.map(lambda pairs: urlencode(pairs).encode()),
    st.integers(min_value=1, max_value=3000).map(lambda n: b"x" * (MAX_BODY + n)),
    st.sampled_from([f.body for f in FIXTURES if f.body]),
)


@st.composite
def random_requests(draw: st.DrawFn) -> tuple[str, str, list[tuple[bytes, bytes]], Any]:
    provider = draw(st.sampled_from(sorted(PROVIDERS)) | segment)
    shape = draw(st.sampled_from(["provider", "token", "segments"]))
    rest = {
        "provider": [],
        "token": [draw(token_like)],
        "segments": draw(st.lists(segment, min_size=1, max_size=2)),
    }[shape]
    path = "/webhooks/" + "/".join([provider, *rest])
    if provider in PROVIDERS and draw(st.booleans()):  # get past the method check
        method = draw(st.sampled_from(sorted(PROVIDERS[provider].METHODS)))
    else:
        method = draw(methods)
    query = draw(st.none() | form_pairs.map(urlencode))
    url = BASE_URL + path + (f"?{query}" if query else "")
    names = draw(st.lists(st.sampled_from(SIGNING_HEADERS), max_size=5, unique=True))
    headers = [(name.encode(), draw(header_value)) for name in names]
    if draw(st.booleans()):
        content_type = draw(st.sampled_from(CONTENT_TYPES) | printable)
        headers.append((b"content-type", content_type.encode()))
    if draw(st.integers(0, 9)) == 0:  # a lying or unparsable content-length
        headers.append((b"content-length", draw(numbers).encode("utf-8")))
    body = draw(bodies)
    content: Any = body
    if draw(st.booleans()):  # streamed without content-length
        size = draw(st.integers(min_value=1, max_value=1024))
        content = iter([body[i : i + size] for i in range(0, len(body), size)])
    return method, url, headers, content


def _iso_like(draw: st.DrawFn) -> str:
    """Timestamps in the shapes SNS and others send, including out-of-range ones."""
    year = draw(st.integers(1, 9999))
    offset = draw(st.sampled_from(["Z", "+00:00", "-23:59", "+23:59", ""]))
    return f"{year:04d}-01-01T00:00:00.000{offset}"


@st.composite
def forged_requests(draw: st.DrawFn) -> tuple[str, str, list[tuple[bytes, bytes]], bytes]:
    """A real fixture request, signed with a foreign key, then perhaps mutated further."""
    fixture = draw(st.sampled_from(FIXTURES))
    adapter = PROVIDERS[fixture.provider]
    now = int(time.time()) + draw(st.sampled_from([0, 0, 0, -(10**6), 10**6]))
    signed: InboundRequest = adapter.sign(
        fixture.request(BASE_URL), FOREIGN_KEYS[fixture.provider], now
    )
    headers = dict(signed.headers)
    for name in sorted(headers):
        action = draw(st.sampled_from(["keep", "keep", "drop", "replace"]))
        if action == "drop":
            del headers[name]
        elif action == "replace":
            headers[name] = draw(signature_values)
    body = signed.body
    mutation = draw(st.sampled_from(["none", "none", "flip", "truncate", "append", "field"]))
    if mutation == "field":  # one JSON field (or one field of the first array item) replaced
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        target = parsed[0] if isinstance(parsed, list) and parsed else parsed
        if isinstance(target, dict) and target:
            name = draw(st.sampled_from(sorted(target)))
            target[name] = draw(json_values | numbers | st.just(_iso_like(draw)))
            body = json.dumps(parsed).encode()
    elif body and mutation == "flip":
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1 :]
    elif mutation == "truncate":
        body = body[: draw(st.integers(0, len(body)))]
    elif mutation == "append":
        body += draw(st.binary(min_size=1, max_size=40))
    method = draw(st.sampled_from([signed.method, signed.method, "GET", "POST"]))
    return method, signed.url, [(k.encode(), v.encode()) for k, v in headers.items()], body


# -- tests -----------------------------------------------------------------------------


def test_random_requests_are_refused_with_json_errors(fuzz: Fuzz) -> None:
    @settings(FUZZ, max_examples=1500)
    @given(request=random_requests())
    # cases found by this test, kept so they are always tried
    @example(request=("POST", f"{BASE_URL}/webhooks/generic/a.%C3%A9", [], b"{}"))
    @example(request=("GET", f"{BASE_URL}/webhooks/bird/.%C2%80", [], b""))
    @example(request=("HEAD", f"{BASE_URL}/webhooks/bird", [], b""))
    @example(request=("POST", f"{BASE_URL}/webhooks/sns", [], iter([b"x" * (MAX_BODY + 1)])))
    def run(request: tuple[str, str, list[tuple[bytes, bytes]], Any]) -> None:
        fuzz.check(*request)

    run()
    assert fuzz.sent >= 1500
    fuzz.assert_nothing_produced()


def test_forged_provider_requests_are_refused(fuzz: Fuzz) -> None:
    @settings(FUZZ, max_examples=1200)
    @given(request=forged_requests())
    def run(request: tuple[str, str, list[tuple[bytes, bytes]], bytes]) -> None:
        fuzz.check(*request)

    run()
    assert fuzz.sent >= 1200
    fuzz.assert_nothing_produced()
