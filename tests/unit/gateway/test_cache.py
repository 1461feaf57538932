"""How a gateway request meets the response cache: which are cached, under whose
scope, and what is sent upstream on a miss."""

from __future__ import annotations

import json

from gemini_guard.cache import ResponseCache
from gemini_guard.cache.scope import CacheScope
from gemini_guard.clock import FakeClock
from gemini_guard.gateway.auth import Caller
from gemini_guard.gateway.cache import GatewayCache

ALICE = Caller(name="alice", models=None, key="a" * 64)
BOB = Caller(name="bob", models=None, key="b" * 64)
ASK = {
    "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
    "generationConfig": {"temperature": 0},
}


def _cache(upstream: CacheScope | None = None) -> GatewayCache:
    scope = upstream or CacheScope.project("team-a", credential="AIza-upstream")
    return GatewayCache(ResponseCache("memory://", clock=FakeClock()), scope)


def test_each_token_has_its_own_scope_within_the_upstreams() -> None:
    cache = _cache()
    body = json.dumps(ASK).encode()
    mine, theirs = (cache.plan(c, "gemini-2.5-flash", ASK, body) for c in (ALICE, BOB))
    assert mine is not None
    assert theirs is not None
    assert mine.key != theirs.key
    assert mine.scope.kind == "tenant"
    assert mine.scope.credential == "AIza-upstream"
    other_project = _cache(CacheScope.project("team-b", credential="AIza-upstream"))
    elsewhere = other_project.plan(ALICE, "gemini-2.5-flash", ASK, body)
    assert elsewhere is not None
    assert elsewhere.scope != mine.scope
    assert "a" * 64 not in repr(mine.scope)


def test_the_cache_label_marks_a_request_and_is_not_sent_upstream() -> None:
    cache = _cache()
    marked = {
        "contents": ASK["contents"],
        "labels": {"gemini-guard-cache": "600", "team": "web"},
    }
    plan = cache.plan(ALICE, "gemini-2.5-flash", marked, json.dumps(marked).encode())
    assert plan is not None
    assert plan.ttl == 600
    assert json.loads(plan.body) == {"contents": ASK["contents"], "labels": {"team": "web"}}
    alone = {"contents": ASK["contents"], "labels": {"gemini-guard-cache": "yes"}}
    plan = cache.plan(ALICE, "gemini-2.5-flash", alone, b"")
    assert plan is not None
    assert json.loads(plan.body) == {"contents": ASK["contents"]}
    no = {**ASK, "labels": {"gemini-guard-cache": "no"}}
    assert cache.plan(ALICE, "gemini-2.5-flash", no, b"") is None


def test_a_request_the_policy_leaves_out_is_not_planned() -> None:
    cache = _cache()
    warm = {"contents": ASK["contents"], "generationConfig": {"temperature": 1}}
    assert cache.plan(ALICE, "gemini-2.5-flash", warm, b"") is None
    assert cache.plan(ALICE, "gemini-2.5-flash", ["not", "an", "object"], b"") is None
    body = json.dumps(ASK).encode()
    plan = cache.plan(ALICE, "gemini-2.5-flash", ASK, body)
    assert plan is not None
    assert plan.body is body


def test_an_entry_kept_as_the_apis_json_gives_back_the_same_bytes() -> None:
    from gemini_guard.cache.entry import Entry

    body = (
        b'{"candidates": [{"content": {"role": "model", "parts": [{"text": "4"}]},'
        b' "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 7,'
        b' "candidatesTokenCount": 1}, "modelVersion": "gemini-2.5-flash"}'
    )
    entry = Entry.encode_wire(model="gemini-2.5-flash", bodies=[body], stream=False)
    again = Entry.decode(entry.value)  # as read back from SQLite or Redis
    assert entry.wire == again.wire == (body,)
    (response,) = again.responses()
    assert response.text == "4"
    assert again.tokens_saved == 8
