"""Each built-in scenario does what its description promises."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import httpx

from gemini_guard.clock import FakeClock
from gemini_guard.emulator import Emulator

ClientFactory = Callable[[Emulator], httpx.AsyncClient]
BODY = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}


async def _statuses(
    client: httpx.AsyncClient, model: str, n: int, *, key: str = "k", stream: bool = False
) -> Counter[int]:
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    out: Counter[int] = Counter()
    for _ in range(n):
        response = await client.post(
            f"/v1beta/models/{model}:{method}", json=BODY, headers={"x-goog-api-key": key}
        )
        if stream and response.status_code == 200 and '"error"' in response.text:
            out[-1] += 1  # a stream that broke after it started
        else:
            out[response.status_code] += 1
    return out


async def test_healthy_never_limits_or_fails(open_client: ClientFactory) -> None:
    client = open_client(Emulator("healthy", clock=FakeClock()))
    assert await _statuses(client, "gemini-2.5-pro", 300) == Counter({200: 300})


async def test_free_tier_enforces_the_published_limits(open_client: ClientFactory) -> None:
    clock = FakeClock()
    client = open_client(Emulator("free-tier", clock=clock))
    assert await _statuses(client, "gemini-2.5-pro", 6) == Counter({200: 5, 429: 1})
    assert await _statuses(client, "gemini-2.5-flash", 11) == Counter({200: 10, 429: 1})
    assert await _statuses(client, "gemini-2.5-flash-lite", 16) == Counter({200: 15, 429: 1})
    assert await _statuses(client, "gemini-2.5-flash", 1, key="other-key") == Counter({200: 1})
    # 100 requests a day for pro: 95 more over the day, then the per-day 429.
    for _ in range(19):
        clock.advance(60)
        assert (await _statuses(client, "gemini-2.5-pro", 5))[200] == 5
    clock.advance(60)
    assert await _statuses(client, "gemini-2.5-pro", 1) == Counter({429: 1})


async def test_dec_2025_cut_lowers_limits_ten_minutes_in(open_client: ClientFactory) -> None:
    clock = FakeClock()
    emu = Emulator("dec-2025-cut", clock=clock)
    client = open_client(emu)
    assert await _statuses(client, "gemini-2.5-flash", 11) == Counter({200: 10, 429: 1})
    clock.advance(599)
    limits = emu.limits("gemini-2.5-flash", "free")
    assert limits is not None
    assert limits.rpm == 10
    clock.advance(1)
    limits = emu.limits("gemini-2.5-flash", "free")
    assert limits is not None
    assert (limits.rpm, limits.rpd) == (5, 50)
    assert await _statuses(client, "gemini-2.5-flash", 6) == Counter({200: 5, 429: 1})


async def test_overload_is_a_503_storm_on_pro_in_its_window(open_client: ClientFactory) -> None:
    clock = FakeClock()
    client = open_client(Emulator("overload", clock=clock))
    before = await _statuses(client, "gemini-2.5-pro", 10)  # latency moves the clock
    assert before[200] == 10
    assert clock.monotonic() < 30 + 60
    clock.advance(max(0.0, 30 - clock.monotonic()))
    storm = await _statuses(client, "gemini-2.5-pro", 100)
    assert 70 <= storm[503] <= 97
    assert storm[503] + storm[200] == 100
    flash = await _statuses(client, "gemini-2.5-flash", 100)
    assert flash[503] <= 10
    assert flash[200] >= 90
    clock.advance(max(0.0, 900 - clock.monotonic()))
    assert (await _statuses(client, "gemini-2.5-pro", 20))[200] == 20


async def _bodies_of_429s(
    client: httpx.AsyncClient, model: str, n: int
) -> tuple[int, list[dict[str, object]]]:
    """(successes, the error objects of the 429s) of `n` requests."""
    ok, refused = 0, []
    for _ in range(n):
        response = await client.post(
            f"/v1beta/models/{model}:generateContent", json=BODY, headers={"x-goog-api-key": "k"}
        )
        if response.status_code == 200:
            ok += 1
        else:
            assert response.status_code == 429, response.text
            refused.append(response.json()["error"])
    return ok, refused


async def test_phantom_429s_hit_pro_at_low_utilisation(open_client: ClientFactory) -> None:
    emulator = Emulator("phantom-429", clock=FakeClock())
    client = open_client(emulator)
    # 100 requests: two thirds of the 150 RPM tier 1 allows gemini-2.5-pro.
    ok, refused = await _bodies_of_429s(client, "gemini-2.5-pro", 100)
    assert 25 <= len(refused) <= 55  # 40% at random
    assert ok + len(refused) == 100
    assert {e["message"] for e in refused} == {"Resource has been exhausted (e.g. check quota)."}
    assert all("details" not in e and e["status"] == "RESOURCE_EXHAUSTED" for e in refused)
    # The refused requests were not admitted: only the successes count against the quota.
    (project,) = emulator.stats()["projects"].values()
    assert project["gemini-2.5-pro"]["rejected"] == {"phantom_429": len(refused)}
    assert await _statuses(client, "gemini-2.5-flash", 100) == Counter({200: 100})


async def test_shared_capacity_429s_come_whatever_the_rate(open_client: ClientFactory) -> None:
    clock = FakeClock()
    client = open_client(Emulator("shared-capacity", clock=clock))
    ok, refused = await _bodies_of_429s(client, "gemini-2.5-pro", 100)
    assert 15 <= len(refused) <= 45  # 30% while capacity is short
    message = (
        "Resource exhausted. Please try again later. Please refer to "
        "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429"
    )
    assert {e["message"] for e in refused} == {message}
    assert all("details" not in e for e in refused)  # no QuotaFailure, no RetryInfo
    reasons = [e.get("errors") for e in refused]
    with_reason = [r for r in reasons if r is not None]
    assert with_reason  # some carry the older errors[] list...
    assert len(with_reason) < len(refused)  # ...and some do not
    assert all(
        r == [{"message": message, "domain": "global", "reason": "rateLimitExceeded"}]
        for r in with_reason
    )
    clock.advance(180.0)  # capacity is less short after two minutes, at any rate
    ok, refused = await _bodies_of_429s(client, "gemini-2.5-pro", 100)
    assert len(refused) <= 20
    assert ok == 100 - len(refused)
    assert await _statuses(client, "gemini-2.5-flash", 50) == Counter({200: 50})


async def test_flaky_mixes_server_errors_drops_and_broken_streams(
    open_client: ClientFactory,
) -> None:
    from gemini_guard.emulator import DroppedConnection

    clock = FakeClock()
    client = open_client(Emulator("flaky", clock=clock))
    seen: Counter[int] = Counter()
    for _ in range(400):
        try:
            seen += await _statuses(client, "gemini-2.5-flash", 1)
        except DroppedConnection:
            seen[0] += 1
    assert {500, 502, 504, 0} <= set(seen)
    assert seen[200] >= 300
    assert 30 in clock.sleeps  # the 504s waited 30 s
    streams: Counter[int] = Counter()
    for _ in range(100):
        try:
            streams += await _statuses(client, "gemini-2.5-flash", 1, stream=True)
        except DroppedConnection:
            streams[0] += 1
    assert streams[-1] >= 1
