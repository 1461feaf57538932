"""Who gets a cached answer: scopes and credentials, with the real SDK and the emulator.

Every test runs over the three stores (one `ResponseCache` object shared by the
Guards for memory://, one SQLite file, one real Redis), as Guards of different
processes would share them.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.genai import types

from gemini_guard.cache import CacheConfig, ResponseCache
from gemini_guard.cache.stores.memory import MemoryCacheStore
from gemini_guard.clock import FakeClock
from gemini_guard.diagnosis import Category
from gemini_guard.emulator import EmulatorServer, Scenario, serve
from gemini_guard.emulator.scenario import KeySpec
from gemini_guard.errors import CallFailed
from gemini_guard.guard import Guard, last_call
from tests.support.redis_server import RedisServer, redis_server
from tests.support.sdk_clients import emulator_client

__all__ = ["redis_server"]

FLASH = "gemini-2.5-flash"
DETERMINISTIC: types.GenerateContentConfigDict = {"temperature": 0}
PROJECT_A = "proj-alpha-5521"
PROJECT_B = "proj-beta-8830"
KEY_A1 = "AIzaSyScopeTestAlphaOne-0123456789abcdef"
KEY_A2 = "AIzaSyScopeTestAlphaTwo-0123456789abcdef"
KEY_B = "AIzaSyScopeTestBetaOnly-0123456789abcdef"
KEY_BAD = "AIzaSyScopeTestInvalid0-0123456789abcdef"
KEYS = {
    KEY_A1: KeySpec(project=PROJECT_A, tier="tier1"),
    KEY_A2: KeySpec(project=PROJECT_A, tier="tier1"),
    KEY_B: KeySpec(project=PROJECT_B, tier="tier1"),
    KEY_BAD: KeySpec(project=PROJECT_A, tier="tier1", state="invalid"),
}

# A Guard's cache argument: a URL for SQLite and Redis, the one shared object for memory.
CacheFor = Callable[[CacheConfig], "str | CacheConfig | ResponseCache"]


# Guards made by a test, closed after it (their caches hold connections and files).
_guards: list[Guard] = []


def opened(guard: Guard) -> Guard:
    _guards.append(guard)
    return guard


def _close_guards() -> None:
    while _guards:
        _guards.pop().close()


@pytest.fixture(autouse=True)
def close_guards() -> Iterator[None]:
    yield
    _close_guards()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(clock: FakeClock) -> Iterator[EmulatorServer]:
    scenario = Scenario(name="scopes", default_tier="tier1", keys=KEYS, accept_unknown_keys=False)
    with serve(scenario, clock=clock) as running:
        yield running


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)],
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cache.db'}"
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


@pytest.fixture
def cache_for(store_url: str, clock: FakeClock) -> Iterator[CacheFor]:
    """Each Guard's cache argument, all on one store."""
    shared: dict[str, ResponseCache] = {}

    def make(config: CacheConfig) -> str | CacheConfig | ResponseCache:
        config = config.model_copy(update={"url": store_url})
        if store_url != "memory://":
            return config
        # One process: the Guards share one cache object (and so its store).
        key = config.model_dump_json()
        if key not in shared:
            shared[key] = ResponseCache(config, clock=clock)
        return shared[key]

    yield make
    _close_guards()  # before the store goes away (a Redis server is stopped next)
    for cache in shared.values():
        cache.close()


def requests_seen(server: EmulatorServer) -> int:
    return int(server.emulator.stats()["totals"]["requests"])


def make_guard(
    server: EmulatorServer,
    clock: FakeClock,
    cache_for: CacheFor,
    key: str,
    *,
    project: str = "default",
    scope: str = "project",
) -> Guard:
    config = CacheConfig(scope=scope)  # type: ignore[arg-type]
    return opened(
        Guard(
            client=emulator_client(server, key),
            clock=clock,
            cache=cache_for(config),
            project=project,
            log=False,
        )
    )


def ask(guard: Guard, question: str = "What is the boiling point of water?") -> str:
    response = guard.models.generate_content(model=FLASH, contents=question, config=DETERMINISTIC)
    return response.text or ""


def from_cache() -> bool:
    info = last_call()
    return info is not None and info.call_id == "cache"


def test_two_projects_on_one_store_never_share(
    server: EmulatorServer, clock: FakeClock, cache_for: CacheFor
) -> None:
    alpha = make_guard(server, clock, cache_for, KEY_A1, project=PROJECT_A)
    beta = make_guard(server, clock, cache_for, KEY_B, project=PROJECT_B)
    ask(alpha)
    ask(beta)
    assert not from_cache()
    ask(beta)  # beta's own answer now
    assert from_cache()
    assert requests_seen(server) == 2


def test_keys_of_unnamed_projects_never_share(
    server: EmulatorServer, clock: FakeClock, cache_for: CacheFor
) -> None:
    # Nothing tells which project a key is in: each key is its own scope.
    first = make_guard(server, clock, cache_for, KEY_A1)
    second = make_guard(server, clock, cache_for, KEY_A2)
    ask(first)
    ask(second, "warm up")
    ask(second)
    assert not from_cache()
    assert requests_seen(server) == 3


def test_keys_of_one_named_project_share_once_each_was_accepted(
    server: EmulatorServer, clock: FakeClock, cache_for: CacheFor
) -> None:
    first = make_guard(server, clock, cache_for, KEY_A1, project=PROJECT_A)
    second = make_guard(server, clock, cache_for, KEY_A2, project=PROJECT_A)
    answer = ask(first)
    # The second key has no successful call yet: it is sent, not served.
    assert ask(second) == answer
    assert not from_cache()
    assert requests_seen(server) == 2
    # Now it has one: the project's answers are its own.
    assert ask(second, "Another question") != ""
    assert ask(first, "Another question") != ""
    assert from_cache()
    assert requests_seen(server) == 3


def test_sharing_across_projects_is_an_explicit_opt_in(
    server: EmulatorServer, clock: FakeClock, cache_for: CacheFor
) -> None:
    alpha = make_guard(server, clock, cache_for, KEY_A1, project=PROJECT_A, scope="shared")
    beta = make_guard(server, clock, cache_for, KEY_B, project=PROJECT_B, scope="shared")
    answer = ask(alpha)
    ask(beta, "beta's own first call")
    assert ask(beta) == answer
    assert from_cache()
    assert requests_seen(server) == 2


def test_the_key_scope_keeps_keys_of_one_project_apart(
    server: EmulatorServer, clock: FakeClock, cache_for: CacheFor
) -> None:
    first = make_guard(server, clock, cache_for, KEY_A1, project=PROJECT_A, scope="key")
    second = make_guard(server, clock, cache_for, KEY_A2, project=PROJECT_A, scope="key")
    ask(first)
    ask(second, "warm up")
    ask(second)
    assert not from_cache()
    assert requests_seen(server) == 3


@pytest.mark.parametrize("scope", ["project", "shared"])
def test_an_invalid_key_is_never_served_from_the_cache(
    server: EmulatorServer, clock: FakeClock, cache_for: CacheFor, scope: str
) -> None:
    good = make_guard(server, clock, cache_for, KEY_A1, project=PROJECT_A, scope=scope)
    bad = make_guard(server, clock, cache_for, KEY_BAD, project=PROJECT_A, scope=scope)
    ask(good)
    for _ in range(3):
        with pytest.raises(CallFailed) as caught:
            ask(bad)
        assert caught.value.diagnosis.category == Category.INVALID_API_KEY
        assert not from_cache()
    # Each of its calls reached the API (which refused it); none was answered here.
    assert requests_seen(server) == 4
    ask(good)
    assert from_cache()  # the good key is still served


def revoke(server: EmulatorServer, key: str) -> None:
    """Google disables a key (reported as leaked) while it is in use."""
    emulator = server.emulator
    keys = dict(emulator.scenario.keys)
    keys[key] = keys[key].model_copy(update={"state": "leaked"})
    emulator.scenario = emulator.scenario.model_copy(update={"keys": keys})


def test_a_key_refused_after_earlier_successes_stops_being_served(
    server: EmulatorServer, clock: FakeClock, cache_for: CacheFor
) -> None:
    first = make_guard(server, clock, cache_for, KEY_A1, project=PROJECT_A)
    other = make_guard(server, clock, cache_for, KEY_A1, project=PROJECT_A)  # another process
    ask(first)
    ask(first)
    assert from_cache()
    ask(other, "warm up")
    ask(other)
    assert from_cache()
    seen = requests_seen(server)
    revoke(server, KEY_A1)
    with pytest.raises(CallFailed) as caught:
        ask(first, "a new question")  # the API refuses the key now
    assert caught.value.diagnosis.category == Category.INVALID_API_KEY
    # From now on the cached answer is not served to the key, in any process.
    for guard in (first, other):
        with pytest.raises(CallFailed):
            ask(guard)
        assert not from_cache()
    assert requests_seen(server) == seen + 3


def test_an_acceptance_lasts_credential_ttl_then_one_call_checks_the_key(
    server: EmulatorServer, clock: FakeClock, cache_for: CacheFor
) -> None:
    config = CacheConfig(credential_ttl=120, ttl=3600)
    guard = opened(
        Guard(
            client=emulator_client(server, KEY_A1),
            clock=clock,
            cache=cache_for(config),
            project=PROJECT_A,
            log=False,
        )
    )
    ask(guard)
    clock.advance(119)
    ask(guard)
    assert from_cache()
    revoke(server, KEY_A1)  # nothing is sent, so nothing tells the cache yet
    ask(guard)
    assert from_cache()
    clock.advance(1)  # the acceptance has run out: the key is checked again
    with pytest.raises(CallFailed):
        ask(guard)
    with pytest.raises(CallFailed):
        ask(guard)
    assert requests_seen(server) == 3


async def test_asyncio_calls_keep_to_the_same_rules(
    server: EmulatorServer, clock: FakeClock, cache_for: CacheFor
) -> None:
    good = make_guard(server, clock, cache_for, KEY_A1, project=PROJECT_A)
    bad = make_guard(server, clock, cache_for, KEY_BAD, project=PROJECT_A)

    async def aask(guard: Guard) -> str:
        response = await guard.aio.models.generate_content(
            model=FLASH, contents="async question", config=DETERMINISTIC
        )
        return response.text or ""

    await aask(good)
    await aask(good)
    assert from_cache()
    with pytest.raises(CallFailed):
        await aask(bad)
    revoke(server, KEY_A1)
    with pytest.raises(CallFailed):
        await good.aio.models.generate_content(model=FLASH, contents="new", config=DETERMINISTIC)
    with pytest.raises(CallFailed):
        await aask(good)
    assert requests_seen(server) == 4


async def test_a_key_without_an_accepted_call_does_not_join_anothers_flight(
    server: EmulatorServer, clock: FakeClock
) -> None:
    # Memory cache, one object: the concurrent calls of two keys of one project.
    cache = ResponseCache("memory://", clock=clock)
    good, bad = (
        opened(
            Guard(client=emulator_client(server, key), clock=clock, cache=cache, project=PROJECT_A)
        )
        for key in (KEY_A1, KEY_BAD)
    )
    await good.aio.models.generate_content(model=FLASH, contents="warm up", config=DETERMINISTIC)
    first, second = await asyncio.gather(
        good.aio.models.generate_content(model=FLASH, contents="herd", config=DETERMINISTIC),
        bad.aio.models.generate_content(model=FLASH, contents="herd", config=DETERMINISTIC),
        return_exceptions=True,
    )
    assert isinstance(first, types.GenerateContentResponse)
    assert isinstance(second, CallFailed)  # its own call, refused; not the good key's answer
    assert requests_seen(server) == 3
    cache.close()


def test_context_caches_are_kept_per_scope(server: EmulatorServer, clock: FakeClock) -> None:
    from gemini_guard.cache import ContextCacheChanged
    from gemini_guard.telemetry import Event, Telemetry

    manual = "The operating manual says: " + "always check the valve pressure first. " * 150
    config: types.GenerateContentConfigDict = {"temperature": 1, "system_instruction": manual}
    events: list[Event] = []
    # One cache object for two Guards (its events are its own: a hook here).
    cache = ResponseCache(
        CacheConfig(context=True, context_ttl=600, policy="off"),
        clock=clock,
        telemetry=Telemetry([events.append]),
    )
    guards = {
        key: opened(Guard(client=emulator_client(server, key), clock=clock, cache=cache, log=False))
        for key in (KEY_A1, KEY_B)
    }

    def question(guard: Guard, text: str) -> None:
        contents = [
            {"role": "user", "parts": [{"text": "About the pump."}]},
            {"role": "model", "parts": [{"text": "Go ahead."}]},
            {"role": "user", "parts": [{"text": text}]},
        ]
        guard.models.generate_content(model=FLASH, contents=contents, config=config)

    for key, guard in guards.items():
        question(guard, f"first from {key[-4:]}")
        question(guard, f"second from {key[-4:]}")
    changes = [e for e in events if isinstance(e, ContextCacheChanged)]
    created = [e.name for e in changes if e.action == "created"]
    used = [e.name for e in changes if e.action == "used"]
    # Each project made its own entry and used only its own: the second key never
    # sent the first key's entry (which lives in another project on the server).
    assert len(created) == 2
    assert len(set(created)) == 2
    assert used == created
    totals = server.emulator.stats()["totals"]
    assert totals["requests"] == 6  # 4 questions, 2 creations
    assert totals["rejected"] == {}  # no request named a cache of another project
    projects = server.emulator.stats()["projects"]
    assert projects[PROJECT_A][FLASH]["cached_tokens"] > 1000
    assert projects[PROJECT_B][FLASH]["cached_tokens"] > 1000
    cache.close()  # deletes both entries, each with its own project's client
    assert [e.action for e in events if isinstance(e, ContextCacheChanged)][-2:] == [
        "deleted",
        "deleted",
    ]


def test_stored_names_show_no_project_key_or_token(
    server: EmulatorServer, clock: FakeClock, cache_for: CacheFor, store_url: str, tmp_path: Path
) -> None:
    from gemini_guard.cache.scope import CacheScope

    token = "gw-tenant-token-4411-secret"
    alpha = make_guard(server, clock, cache_for, KEY_A1, project=PROJECT_A)
    beta = make_guard(server, clock, cache_for, KEY_B, project=PROJECT_B)
    unnamed = make_guard(server, clock, cache_for, KEY_A2)
    bad = make_guard(server, clock, cache_for, KEY_BAD, project=PROJECT_A)
    for guard in (alpha, beta, unnamed):
        ask(guard)
        ask(guard, "second")
    with pytest.raises(CallFailed):
        ask(bad)  # a refusal is recorded too
    assert alpha.cache is not None
    tenant = CacheScope.tenant(token, credential=KEY_A1)
    plan = alpha.cache.plan(FLASH, "tenant question", DETERMINISTIC, scope=tenant)
    assert plan.key is not None
    alpha.cache.credential_accepted(tenant)
    for guard in (alpha, beta, unnamed, bad):
        assert guard.cache is not None
        guard.cache.flush_stats()
    secrets = [PROJECT_A, PROJECT_B, KEY_A1, KEY_A2, KEY_B, KEY_BAD, token]
    if store_url.startswith("sqlite"):
        raw = b"".join(p.read_bytes() for p in tmp_path.glob("cache.db*"))
        with sqlite3.connect(tmp_path / "cache.db") as db:
            tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            rows = [row for t in tables for row in db.execute(f"SELECT * FROM {t}")]
        assert {"response_cache", "cache_credentials", "cache_stats"} <= set(tables)
        assert len(rows) > 6
        dumped = repr(rows).encode() + raw
    elif store_url.startswith("redis"):
        dumped = _redis_dump(store_url)
    else:
        assert alpha.cache is not None
        store = alpha.cache.store
        assert isinstance(store, MemoryCacheStore)
        dumped = repr(list(store._items)).encode()
        dumped += repr(list(store._credentials)).encode()
        dumped += repr(store.read_stats()).encode()
    assert dumped
    for secret in secrets:
        assert secret.encode() not in dumped, secret


def _redis_dump(url: str) -> bytes:
    import redis

    client = redis.Redis.from_url(url)
    parts: list[Any] = []
    try:
        keys = client.keys("*")
        assert len(keys) > 6
        for key in keys:
            parts.append(key)
            kind = client.type(key)
            if kind == b"string":
                parts.append(client.get(key) or b"")
            elif kind == b"hash":
                for field, value in client.hgetall(key).items():
                    parts += [field, value]
            elif kind == b"zset":
                parts += client.zrange(key, 0, -1)
            elif kind == b"set":
                parts += list(client.smembers(key))
    finally:
        client.close()
    return b"\x00".join(p if isinstance(p, bytes) else str(p).encode() for p in parts)


def test_two_tenant_scopes_are_isolated_and_a_named_group_shares(
    server: EmulatorServer, clock: FakeClock, store_url: str
) -> None:
    # What a gateway does with one upstream key and many tenant tokens: every call
    # names its tenant's scope (or the group the tenant opted into).
    from gemini_guard.cache.entry import Entry
    from gemini_guard.cache.scope import CacheScope

    upstream = emulator_client(server, KEY_A1)
    answer = upstream.models.generate_content(model=FLASH, contents="q", config=DETERMINISTIC)
    entry = Entry.encode(model=FLASH, responses=[answer], stream=False)
    gateway, other_replica = (ResponseCache(store_url, clock=clock) for _ in range(2))
    if store_url == "memory://":  # one process: the replicas share the store object
        other_replica = gateway
    one = CacheScope.tenant("gw-token-one-1111", credential=KEY_A1)
    two = CacheScope.tenant("gw-token-two-2222", credential=KEY_A1)
    group_one, group_two = (
        CacheScope.shared(group="acme-tenants", credential=KEY_A1) for _ in range(2)
    )
    try:
        gateway.credential_accepted(one)  # the upstream key answered
        plan = gateway.plan(FLASH, "q", DETERMINISTIC, scope=one)
        assert plan.key is not None
        gateway.keep(plan.key, entry, plan.ttl, stream=False)
        assert gateway.lookup(plan.key, scope=one) is not None
        assert other_replica.lookup(plan.key, scope=one) is not None
        # Tenant two asks the very same question: another key, nothing found.
        for cache in (gateway, other_replica):
            key_two = cache.plan(FLASH, "q", DETERMINISTIC, scope=two).key
            assert key_two is not None
            assert key_two != plan.key
            assert cache.lookup(key_two, scope=two) is None
        assert gateway.clear(two) == 0  # nothing was ever stored for tenant two
        # A named group both tenants opted into shares one entry.
        shared = gateway.plan(FLASH, "q", DETERMINISTIC, scope=group_one).key
        assert shared is not None
        gateway.keep(shared, entry, 60, stream=False)
        assert other_replica.plan(FLASH, "q", DETERMINISTIC, scope=group_two).key == shared
        hit = other_replica.lookup(shared, scope=group_two)
        assert hit is not None
        assert hit[1][0].text == answer.text
        # Once the upstream key is refused, no tenant is served any more.
        gateway.credential_refused(one)
        assert other_replica.lookup(plan.key, scope=one) is None
        assert other_replica.lookup(shared, scope=group_two) is None
    finally:
        gateway.close()
        if other_replica is not gateway:
            other_replica.close()


def test_a_cached_stream_is_not_replayed_to_an_invalid_key(
    server: EmulatorServer, clock: FakeClock, cache_for: CacheFor
) -> None:
    good = make_guard(server, clock, cache_for, KEY_A1, project=PROJECT_A)
    bad = make_guard(server, clock, cache_for, KEY_BAD, project=PROJECT_A)

    def stream(guard: Guard) -> list[str]:
        chunks = guard.models.generate_content_stream(
            model=FLASH, contents="stream it", config=DETERMINISTIC
        )
        return [c.text or "" for c in chunks]

    first = stream(good)
    assert stream(good) == first
    assert from_cache()
    with pytest.raises(CallFailed) as caught:
        stream(bad)
    assert caught.value.diagnosis.category == Category.INVALID_API_KEY
    assert requests_seen(server) == 2


def test_a_project_pool_is_one_scope_without_context_caching(
    server: EmulatorServer, clock: FakeClock
) -> None:
    from gemini_guard.cache.scope import CacheScope
    from gemini_guard.quota.pool import Project, ProjectPool

    pool = ProjectPool(
        [Project(PROJECT_A, keys=(KEY_A1,)), Project(PROJECT_B, keys=(KEY_B,))], clock=clock
    )
    guard = opened(
        Guard(
            client=emulator_client(server, KEY_A1),
            clock=clock,
            quota=pool,
            cache=CacheConfig(context=True),
            log=False,
        )
    )
    assert guard.cache is not None
    # The pool picks a project (and its key) after the lookup: a context cache made
    # with the Guard's own client would be named in another project's requests.
    assert guard.cache.context is None
    scope = guard.cache.scope
    assert scope.kind == "project"
    assert scope == CacheScope.project("pool\x00" + "\x00".join(sorted([PROJECT_A, PROJECT_B])))
    ask(guard)
    ask(guard)
    assert from_cache()
    assert requests_seen(server) == 1
    pool.close()
