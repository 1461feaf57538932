"""The HTTP the guarded path hands back: what the SDK's httpx client would have had.

`guard.client` sends through `GuardedTransport`, which hands back the attempt's own
answer rather than building another, and sends the caller's own request when an
attempt changes nothing in it. These tests hold what the caller sees to what plain
httpx gives: a compressed answer read and described as read, cookies an answer sets,
the charset an answer names, and the request each attempt sends. Upstreams are real
servers on loopback: the emulator, and a small HTTP server for the answers the
emulator never gives (gzip, cookies, a charset).
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from gemini_guard.call.aiohttp_transport import AiohttpTransport
from gemini_guard.call.transport import (
    AsyncGuardedHttpClient,
    GuardedHttpClient,
    GuardedTransport,
)
from gemini_guard.clock import FakeClock
from gemini_guard.emulator import EmulatorServer, Scenario, serve
from gemini_guard.guard import Guard
from tests.support.sdk_clients import emulator_client

PRO, FLASH = "gemini-2.5-pro", "gemini-2.5-flash"
KEY = "AIzaSyHTTPTESTKEY-never-shown-0123456789"
REQUEST = {"contents": [{"role": "user", "parts": [{"text": "Name a river."}]}]}
ANSWER = {
    "candidates": [
        {
            "content": {"role": "model", "parts": [{"text": "The Rhône, où l'eau court."}]},
            "finishReason": "STOP",
        }
    ],
    "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 8},
}


class _Reply:
    """What the small upstream answers next: headers and body."""

    def __init__(self) -> None:
        self.headers: list[tuple[str, str]] = []
        self.body = b""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the API

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        reply: _Reply = self.server.reply  # type: ignore[attr-defined]
        self.send_response(200)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[tuple[str, _Reply]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.reply = _Reply()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", server.reply  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _guard(base_url: str) -> Guard:
    from google import genai
    from google.genai import types

    client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=base_url))
    return Guard(client=client, models=[FLASH], clock=FakeClock(), log=False)


def _url(base_url: str, model: str = FLASH) -> str:
    return f"{base_url}/v1beta/models/{model}:generateContent"


def test_a_compressed_answer_reads_as_httpx_reads_it(upstream: tuple[str, _Reply]) -> None:
    base_url, reply = upstream
    reply.headers = [("content-type", "application/json"), ("content-encoding", "gzip")]
    reply.body = gzip.compress(json.dumps(ANSWER).encode())
    guard = _guard(base_url)
    with GuardedHttpClient(GuardedTransport(guard)) as client, httpx.Client() as plain:
        ours = client.post(_url(base_url), json=REQUEST, headers={"x-goog-api-key": KEY})
        theirs = plain.post(_url(base_url), json=REQUEST, headers={"x-goog-api-key": KEY})
    assert ours.json() == theirs.json() == ANSWER
    # The body was decoded when read: the headers describe it as it is now.
    assert "content-encoding" not in ours.headers
    assert ours.headers["content-length"] == str(len(ours.content))
    assert ours.headers["x-gemini-guard-model"] == FLASH
    assert ours.headers["x-gemini-guard-attempts"] == "1"
    guard.close()


async def test_a_compressed_answer_reads_the_same_over_aiohttp(
    upstream: tuple[str, _Reply],
) -> None:
    base_url, reply = upstream
    reply.headers = [("content-type", "application/json"), ("content-encoding", "gzip")]
    reply.body = gzip.compress(json.dumps(ANSWER).encode())
    guard = _guard(base_url)
    transport = GuardedTransport(guard, ainner=AiohttpTransport())
    async with AsyncGuardedHttpClient(transport) as client:
        ours = await client.post(_url(base_url), json=REQUEST, headers={"x-goog-api-key": KEY})
        reply.headers = [("content-type", "application/json")]
        reply.body = json.dumps(ANSWER).encode()
        plain = await client.post(_url(base_url), json=REQUEST, headers={"x-goog-api-key": KEY})
    assert ours.json() == plain.json() == ANSWER
    assert "content-encoding" not in ours.headers
    assert ours.headers["content-length"] == str(len(ours.content))
    # An answer that came as it was sent keeps its own length, once.
    assert plain.headers.get_list("content-length") == [str(len(plain.content))]
    assert plain.headers["x-gemini-guard-model"] == FLASH
    await guard.aclose()


def test_a_cookie_an_answer_sets_is_kept(upstream: tuple[str, _Reply]) -> None:
    base_url, reply = upstream
    reply.body = json.dumps(ANSWER).encode()
    reply.headers = [("content-type", "application/json"), ("set-cookie", "lane=b; Path=/")]
    guard = _guard(base_url)
    with GuardedHttpClient(GuardedTransport(guard)) as client:
        client.post(_url(base_url), json=REQUEST)
        assert client.cookies.get("lane") == "b"
        reply.headers = [("content-type", "application/json")]
        client.post(_url(base_url), json=REQUEST)  # sets none: the jar stays as it was
        assert dict(client.cookies) == {"lane": "b"}
        client.cookies = {"other": "1"}
        reply.headers = [("content-type", "application/json"), ("set-cookie", "lane=c; Path=/")]
        client.post(_url(base_url), json=REQUEST)
        assert dict(client.cookies) == {"other": "1", "lane": "c"}
    guard.close()


@pytest.mark.parametrize(
    ("content_type", "codec", "expected"),
    [
        ("application/json", "utf-8", "utf-8"),
        ("application/json; charset=utf-16", "utf-16", "utf-16"),
        ("application/json; charset=iso-8859-1", "iso-8859-1", "iso-8859-1"),
    ],
)
def test_an_answer_is_read_in_the_charset_it_names(
    upstream: tuple[str, _Reply], content_type: str, codec: str, expected: str
) -> None:
    base_url, reply = upstream
    text = json.dumps(ANSWER, ensure_ascii=False)
    reply.headers = [("content-type", content_type)]
    reply.body = text.encode(codec)
    guard = _guard(base_url)
    with GuardedHttpClient(GuardedTransport(guard)) as client, httpx.Client() as plain:
        ours = client.post(_url(base_url), json=REQUEST)
        theirs = plain.post(_url(base_url), json=REQUEST)
    assert ours.encoding == theirs.encoding == expected
    assert ours.text == theirs.text == text
    guard.close()


class _Recording(httpx.HTTPTransport):
    """httpx's own transport, keeping each request it is handed."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return super().handle_request(request)


@pytest.fixture
def pro_down() -> Iterator[EmulatorServer]:
    scenario = Scenario(
        name="pro-down",
        default_tier="tier1",
        quotas=False,
        faults=({"kind": "overloaded", "models": (PRO,), "probability": 1.0},),  # type: ignore[arg-type]
    )
    with serve(scenario, clock=FakeClock()) as server:
        yield server


def test_an_attempt_sends_the_callers_request_with_the_attempts_timeout(
    pro_down: EmulatorServer,
) -> None:
    guard = Guard(
        client=emulator_client(pro_down, KEY), models=[PRO, FLASH], clock=FakeClock(), log=False
    )
    recording = _Recording()
    with GuardedHttpClient(GuardedTransport(guard, inner=recording)) as client:
        request = client.build_request(
            "POST", _url(pro_down.base_url, FLASH), json=REQUEST, headers={"x-goog-api-key": KEY}
        )
        asked = dict(request.extensions["timeout"])
        answer = client.send(request)
        assert answer.status_code == 200
        (sent,) = recording.sent
        assert (sent.method, sent.url) == (request.method, request.url)
        assert sent.content == request.content
        assert sent.headers.raw == request.headers.raw
        seconds = guard.retry.attempt_timeout
        assert sent.extensions["timeout"] == dict.fromkeys(
            ("connect", "read", "write", "pool"), seconds
        )
        assert request.extensions["timeout"] == asked  # the caller's request is untouched

        # A fallback changes the model in the path: that attempt is built anew.
        recording.sent.clear()
        answer = client.post(
            _url(pro_down.base_url, PRO), json=REQUEST, headers={"x-goog-api-key": KEY}
        )
    assert answer.headers["x-gemini-guard-model"] == FLASH
    first, last = recording.sent[0], recording.sent[-1]
    assert first.url.path.endswith(f"/{PRO}:generateContent")
    assert last.url.path.endswith(f"/{FLASH}:generateContent")
    assert last.headers["content-length"] == str(len(last.content))
    assert json.loads(last.content) == REQUEST
    guard.close()


def test_a_new_base_url_is_not_answered_from_the_parsed_urls(
    upstream: tuple[str, _Reply],
) -> None:
    base_url, reply = upstream
    reply.headers = [("content-type", "application/json")]
    reply.body = json.dumps(ANSWER).encode()
    guard = _guard(base_url)
    with GuardedHttpClient(GuardedTransport(guard)) as client:
        path = "/v1beta/models/gemini-2.5-flash:generateContent"
        client.base_url = "http://127.0.0.1:9/"
        assert client.build_request("POST", path).url.port == 9
        client.base_url = base_url
        answer = client.post(path, json=REQUEST)
        assert answer.json() == ANSWER
        assert answer.request.url == httpx.URL(base_url + path)
    guard.close()


async def test_a_body_of_known_length_comes_over_aiohttp_whole(
    upstream: tuple[str, _Reply],
) -> None:
    base_url, reply = upstream
    reply.headers = [("content-type", "application/json")]
    reply.body = json.dumps({"text": "x" * 200_000}).encode()
    async with (
        httpx.AsyncClient(transport=AiohttpTransport()) as client,
        client.stream("POST", _url(base_url), json=REQUEST) as answer,
    ):
        pieces = [piece async for piece in answer.aiter_raw()]
    assert pieces == [reply.body]


def test_headers_merge_as_httpx_merges_them(upstream: tuple[str, _Reply]) -> None:
    base_url, _ = upstream
    guard = _guard(base_url)
    asked = {"user-agent": "google-genai-sdk/1", "x-goog-api-key": KEY}
    with GuardedHttpClient(GuardedTransport(guard)) as client, httpx.Client() as plain:
        for _ in range(2):  # the second time from what the first worked out
            ours = client.build_request("POST", _url(base_url), headers=asked, content=b"{}")
            theirs = plain.build_request("POST", _url(base_url), headers=asked, content=b"{}")
            assert ours.headers.raw == theirs.headers.raw
        client.headers["x-trace"] = "on"  # the client's own headers changed in place
        plain.headers["x-trace"] = "on"
        ours = client.build_request("POST", _url(base_url), headers=asked, content=b"{}")
        theirs = plain.build_request("POST", _url(base_url), headers=asked, content=b"{}")
        assert ours.headers.raw == theirs.headers.raw
        assert ours.headers["x-trace"] == "on"
        assert ours.headers["user-agent"] == "google-genai-sdk/1"
        listed = [("x-many", "1"), ("x-many", "2")]
        assert client.build_request("GET", _url(base_url), headers=listed).headers.get_list(
            "x-many"
        ) == ["1", "2"]
    guard.close()
