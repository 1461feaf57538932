"""The emulator in-process: quotas through HTTP, keys, faults, stats and the log."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gemini_guard.clock import FakeClock
from gemini_guard.emulator import DroppedConnection, Emulator

ClientFactory = Callable[[Emulator], httpx.AsyncClient]
FLASH = "/v1beta/models/gemini-2.5-flash:generateContent"


def _body(text: str = "hello") -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}


async def _post(
    client: httpx.AsyncClient, path: str = FLASH, body: Any = None, key: str = "k1"
) -> httpx.Response:
    return await client.post(
        path, json=_body() if body is None else body, headers={"x-goog-api-key": key}
    )


def _detail(response: httpx.Response, kind: str) -> dict[str, Any]:
    for detail in response.json()["error"].get("details", []):
        if detail["@type"].endswith(kind):
            found: dict[str, Any] = detail
            return found
    raise LookupError(kind)


async def test_rpm_is_exact_under_a_fake_clock(
    clock: FakeClock, open_client: ClientFactory
) -> None:
    client = open_client(Emulator("free-tier", clock=clock))  # flash: 10 RPM
    for _ in range(10):
        assert (await _post(client)).status_code == 200
    rejected = await _post(client)
    assert rejected.status_code == 429
    assert _detail(rejected, "RetryInfo")["retryDelay"] == "60s"
    assert rejected.json()["error"]["message"].endswith("Please retry in 60.000000s.")
    (violation,) = _detail(rejected, "QuotaFailure")["violations"]
    assert violation == {
        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
        "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
        "quotaValue": "10",
    }
    clock.advance(59.75)
    still = await _post(client)
    assert still.status_code == 429
    assert "Please retry in 250.000000ms." in still.json()["error"]["message"]
    assert _detail(still, "RetryInfo")["retryDelay"] == "1s"  # rounded up, never early
    clock.advance(0.25)
    assert (await _post(client)).status_code == 200


async def test_retry_delay_is_the_time_until_the_oldest_leaves(
    clock: FakeClock, open_client: ClientFactory
) -> None:
    client = open_client(Emulator("free-tier", clock=clock))
    for _ in range(10):
        assert (await _post(client)).status_code == 200
        clock.advance(1.5)
    # Requests at 0, 1.5, ..., 13.5; now 15.0: the oldest leaves at 60.
    rejected = await _post(client)
    assert "Please retry in 45.000000s." in rejected.json()["error"]["message"]
    assert _detail(rejected, "RetryInfo")["retryDelay"] == "45s"
    clock.advance(45)
    assert (await _post(client)).status_code == 200
    again = await _post(client)
    assert "Please retry in 1.500000s." in again.json()["error"]["message"]
    assert _detail(again, "RetryInfo")["retryDelay"] == "2s"


async def test_rejected_requests_do_not_consume_quota(
    clock: FakeClock, open_client: ClientFactory
) -> None:
    emu = Emulator("free-tier", clock=clock)
    client = open_client(emu)
    for _ in range(10):
        await _post(client)
    for _ in range(5):
        assert (await _post(client)).status_code == 429
    clock.advance(60)
    for _ in range(10):
        assert (await _post(client)).status_code == 200
    flash = next(iter(emu.stats()["projects"].values()))["gemini-2.5-flash"]
    assert flash["admitted"] == 20
    assert flash["rejected"] == {"rpm": 5}


async def test_input_tokens_per_minute(clock: FakeClock, open_client: ClientFactory) -> None:
    scenario = {"limits": {"gemini-2.5-flash": {"free": {"rpm": 1000, "tpm": 100, "rpd": 1000}}}}
    client = open_client(Emulator(scenario, clock=clock))
    forty = _body("x" * 160)  # 40 tokens
    assert (await _post(client, body=forty)).status_code == 200
    clock.advance(10)
    assert (await _post(client, body=forty)).status_code == 200
    rejected = await _post(client, body=forty)
    assert rejected.status_code == 429
    (violation,) = _detail(rejected, "QuotaFailure")["violations"]
    assert violation["quotaId"] == "GenerateContentInputTokensPerModelPerMinute-FreeTier"
    assert violation["quotaValue"] == "100"
    assert "Please retry in 50.000000s." in rejected.json()["error"]["message"]
    small = await client.post(
        "/v1beta/models/gemini-2.5-flash:countTokens",
        json=_body("x" * 80),
        headers={"x-goog-api-key": "k1"},
    )
    assert small.json()["totalTokens"] == 20
    assert (await _post(client, body=_body("x" * 80))).status_code == 200  # 20 more fit


def _utc(year: int, month: int, day: int, hour: int = 0) -> float:
    return dt.datetime(year, month, day, hour, tzinfo=dt.UTC).timestamp()


@pytest.mark.parametrize(
    ("start", "utc_midnight", "pacific_midnight"),
    [
        # Spring forward: 2026-03-08 has 23 hours; it ends at 07:00 UTC on 03-09.
        (_utc(2026, 3, 8, 18), _utc(2026, 3, 9, 0), _utc(2026, 3, 9, 7)),
        # Fall back: 2026-11-01 has 25 hours; it ends at 08:00 UTC on 11-02.
        (_utc(2026, 11, 1, 18), _utc(2026, 11, 2, 0), _utc(2026, 11, 2, 8)),
    ],
)
async def test_requests_per_day_reset_at_pacific_midnight_across_dst(
    start: float, utc_midnight: float, pacific_midnight: float, open_client: ClientFactory
) -> None:
    clock = FakeClock(start=start)
    scenario = {"limits": {"gemini-2.5-flash": {"free": {"rpm": 100, "rpd": 2}}}}
    client = open_client(Emulator(scenario, clock=clock))
    assert (await _post(client)).status_code == 200
    assert (await _post(client)).status_code == 200
    rejected = await _post(client)
    assert rejected.status_code == 429
    (violation,) = _detail(rejected, "QuotaFailure")["violations"]
    assert violation["quotaId"] == "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
    assert violation["quotaValue"] == "2"
    # A per-day 429 carries a short delay, as the real API's does.
    assert int(_detail(rejected, "RetryInfo")["retryDelay"].removesuffix("s")) <= 60
    clock.set_time(utc_midnight + 1)
    assert (await _post(client)).status_code == 429  # UTC midnight changes nothing
    clock.set_time(pacific_midnight - 0.001)
    assert (await _post(client)).status_code == 429
    clock.set_time(pacific_midnight)
    assert (await _post(client)).status_code == 200


async def test_keys_of_one_project_share_its_quota(
    clock: FakeClock, open_client: ClientFactory
) -> None:
    scenario = {
        "keys": {
            "a1": {"project": "alpha"},
            "a2": {"project": "alpha"},
            "b1": {"project": "beta"},
        },
        "limits": {"gemini-2.5-flash": {"free": {"rpm": 2}}},
    }
    emu = Emulator(scenario, clock=clock)
    client = open_client(emu)
    assert (await _post(client, key="a1")).status_code == 200
    assert (await _post(client, key="a2")).status_code == 200
    assert (await _post(client, key="a1")).status_code == 429
    assert (await _post(client, key="a2")).status_code == 429
    assert (await _post(client, key="b1")).status_code == 200
    projects = emu.stats()["projects"]
    assert set(projects) == {"alpha", "beta"}
    assert projects["alpha"]["gemini-2.5-flash"]["rejected"] == {"rpm": 2}


async def test_paid_tier_names_in_the_429(clock: FakeClock, open_client: ClientFactory) -> None:
    scenario = {
        "keys": {"paid": {"project": "p", "tier": "tier1"}},
        "limits": {"gemini-2.5-flash": {"tier1": {"rpm": 1}}},
    }
    client = open_client(Emulator(scenario, clock=clock))
    await _post(client, key="paid")
    rejected = await _post(client, key="paid")
    (violation,) = _detail(rejected, "QuotaFailure")["violations"]
    assert violation["quotaMetric"].endswith("generate_content_paid_tier_requests")
    assert violation["quotaId"] == "GenerateRequestsPerMinutePerProjectPerModel"


async def test_limit_changes_take_effect_at_their_time(
    clock: FakeClock, open_client: ClientFactory
) -> None:
    client = open_client(Emulator("dec-2025-cut", clock=clock))
    for _ in range(10):
        assert (await _post(client)).status_code == 200
    clock.advance(600)  # the cut; the old requests have left the window too
    for _ in range(5):
        assert (await _post(client)).status_code == 200
    rejected = await _post(client)
    assert rejected.status_code == 429
    assert _detail(rejected, "QuotaFailure")["violations"][0]["quotaValue"] == "5"
    assert "limit: 5, model: gemini-2.5-flash" in rejected.json()["error"]["message"]


@pytest.mark.parametrize(
    ("state", "status", "grpc", "words"),
    [
        ("invalid", 400, "INVALID_ARGUMENT", "API key not valid"),
        ("leaked", 403, "PERMISSION_DENIED", "reported as leaked"),
        ("region_blocked", 400, "FAILED_PRECONDITION", "User location is not supported"),
        ("credit_depleted", 402, "RESOURCE_EXHAUSTED", "prepayment credits are depleted"),
    ],
)
async def test_key_conditions_from_the_scenario(
    state: str, status: int, grpc: str, words: str, clock: FakeClock, open_client: ClientFactory
) -> None:
    emu = Emulator({"keys": {"bad": {"project": "p", "state": state}}}, clock=clock)
    client = open_client(emu)
    response = await _post(client, key="bad")
    assert response.status_code == status
    assert response.json()["error"]["status"] == grpc
    assert words in response.json()["error"]["message"]
    # Key conditions apply to every endpoint, not only generation.
    listed = await client.get("/v1/models", headers={"x-goog-api-key": "bad"})
    assert listed.status_code == status


async def test_missing_and_unknown_keys(clock: FakeClock, open_client: ClientFactory) -> None:
    client = open_client(Emulator("free-tier", clock=clock))
    missing = await client.post(FLASH, json=_body())
    assert missing.status_code == 403
    assert "unregistered callers" in missing.json()["error"]["message"]
    assert (await client.post(FLASH + "?key=anything", json=_body())).status_code == 200
    strict = open_client(
        Emulator({"accept_unknown_keys": False, "keys": {"k": {"project": "p"}}}, clock=clock)
    )
    assert (await _post(strict, key="other")).status_code == 400
    assert (await _post(strict, key="k")).status_code == 200


async def test_request_errors(clock: FakeClock, open_client: ClientFactory) -> None:
    client = open_client(Emulator("free-tier", clock=clock))
    unknown_model = await _post(client, "/v1/models/gemini-1.0-pro:generateContent")
    assert unknown_model.status_code == 404
    assert unknown_model.json()["error"]["message"].startswith(
        "models/gemini-1.0-pro is not found for API version v1,"
        " or is not supported for generateContent."
    )
    broken = await client.post(FLASH, content=b'{"contents": [', headers={"x-goog-api-key": "k"})
    assert broken.status_code == 400
    assert broken.json()["error"]["message"].startswith("Invalid JSON payload received.")
    unknown_field = await _post(client, body={**_body(), "stream": True})
    assert 'Unknown name "stream"' in unknown_field.json()["error"]["message"]
    too_hot = await _post(client, body={**_body(), "generationConfig": {"temperature": 3}})
    assert too_hot.status_code == 400
    big = await _post(client, body=_body("x" * (4 * 1_048_576 + 8)))
    assert big.status_code == 400
    assert big.json()["error"]["message"] == (
        "The input token count (1048578) exceeds the maximum number of tokens allowed (1048576)."
    )
    assert (await client.get("/v2/models", headers={"x-goog-api-key": "k"})).status_code == 404


async def test_stats_and_log_name_projects_never_keys(
    tmp_path: Path, clock: FakeClock, open_client: ClientFactory
) -> None:
    log = tmp_path / "requests.jsonl"
    secret = "AIzaSy-very-secret-key-0123456789"
    emu = Emulator(
        {
            "keys": {secret: {"project": "team"}},
            "limits": {"gemini-2.5-flash": {"free": {"rpm": 1}}},
        },
        clock=clock,
        log_path=log,
    )
    client = open_client(emu)
    assert (await _post(client, key=secret)).status_code == 200
    assert (await _post(client, key=secret)).status_code == 429
    stats = (await client.get("/_emulator/stats")).json()
    assert stats == json.loads(json.dumps(emu.stats()))
    cell = stats["projects"]["team"]["gemini-2.5-flash"]
    assert cell["admitted"] == 1
    assert cell["rejected"] == {"rpm": 1}
    assert cell["input_tokens"] == 1
    assert cell["output_tokens"] > 0
    emu.close()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(x["status"], x["reason"]) for x in lines] == [(200, None), (429, "rpm")]
    assert lines[0]["ts"] == clock.time()
    assert lines[0]["project"] == "team"
    scenario = (await client.get("/_emulator/scenario")).text
    for text in (log.read_text(), json.dumps(stats), scenario):
        assert secret not in text
        assert "secret" not in text


async def test_faults_are_seeded_and_reproducible(open_client: ClientFactory) -> None:
    scenario = {"quotas": False, "seed": 42, "faults": [{"kind": "overloaded", "probability": 0.3}]}

    async def run() -> list[int]:
        client = open_client(Emulator(scenario, clock=FakeClock()))
        return [(await _post(client)).status_code for _ in range(60)]

    first, second = await run(), await run()
    assert first == second
    assert 8 <= first.count(503) <= 30
    assert set(first) == {200, 503}


async def test_fault_windows_and_model_filters(
    clock: FakeClock, open_client: ClientFactory
) -> None:
    scenario = {
        "quotas": False,
        "faults": [{"kind": "internal", "models": ["gemini-2.5-pro"], "start": 100, "end": 200}],
    }
    client = open_client(Emulator(scenario, clock=clock))
    pro = "/v1/models/gemini-2.5-pro:generateContent"
    assert (await _post(client, pro)).status_code == 200
    clock.advance(100)
    assert (await _post(client, pro)).status_code == 500
    assert (await _post(client)).status_code == 200  # flash is not affected
    clock.advance(100)
    assert (await _post(client, pro)).status_code == 200


async def test_deadline_fault_waits_on_the_clock(
    clock: FakeClock, open_client: ClientFactory
) -> None:
    scenario = {"quotas": False, "faults": [{"kind": "deadline", "delay": 45}]}
    client = open_client(Emulator(scenario, clock=clock))
    response = await _post(client)
    assert response.status_code == 504
    assert response.json()["error"]["status"] == "DEADLINE_EXCEEDED"
    assert clock.sleeps == [45]
    assert clock.monotonic() == 45


async def test_latency_comes_from_the_clock(clock: FakeClock, open_client: ClientFactory) -> None:
    scenario = {"quotas": False, "latency": [{"distribution": "fixed", "seconds": 2.5}]}
    client = open_client(Emulator(scenario, clock=clock))
    await _post(client)
    await _post(client)
    assert clock.sleeps == [2.5, 2.5]


async def test_dropped_connection_in_process_raises(
    clock: FakeClock, open_client: ClientFactory
) -> None:
    client = open_client(Emulator({"quotas": False, "faults": [{"kind": "drop"}]}, clock=clock))
    with pytest.raises(DroppedConnection):
        await _post(client)


async def test_failed_requests_count_against_quota_unless_told_otherwise(
    clock: FakeClock, open_client: ClientFactory
) -> None:
    base = {
        "limits": {"gemini-2.5-flash": {"free": {"rpm": 2}}},
        "faults": [{"kind": "overloaded", "end": 10}],
    }
    counting = open_client(Emulator(base, clock=clock))
    assert [(await _post(counting)).status_code for _ in range(3)] == [503, 503, 429]
    free = open_client(Emulator({**base, "faults_consume_quota": False}, clock=FakeClock()))
    assert [(await _post(free)).status_code for _ in range(3)] == [503, 503, 503]


async def test_phantom_429_has_no_details_and_costs_nothing(
    clock: FakeClock, open_client: ClientFactory
) -> None:
    emu = Emulator(
        {
            "limits": {"gemini-2.5-flash": {"free": {"rpm": 1}}},
            "faults": [{"kind": "phantom_429", "end": 1}],
        },
        clock=clock,
    )
    client = open_client(emu)
    phantom = await _post(client)
    assert phantom.status_code == 429
    assert "details" not in phantom.json()["error"]
    clock.advance(1)
    assert (await _post(client)).status_code == 200  # the phantom did not use the 1 RPM


async def test_stream_error_event(clock: FakeClock, open_client: ClientFactory) -> None:
    scenario = {"quotas": False, "faults": [{"kind": "stream_error", "after_chunks": 1}]}
    client = open_client(Emulator(scenario, clock=clock))
    response = await client.post(
        "/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        json=_body(),
        headers={"x-goog-api-key": "k"},
    )
    events = [e for e in response.text.split("\r\n\r\n") if e]
    assert len(events) == 2
    assert json.loads(events[0].removeprefix("data: "))["candidates"]
    assert json.loads(events[1].removeprefix("data: "))["error"]["code"] == 500
    # Non-stream requests are not hit by stream faults.
    assert (await _post(client)).status_code == 200


async def test_stream_without_sse_is_one_json_array(
    clock: FakeClock, open_client: ClientFactory
) -> None:
    client = open_client(Emulator("healthy", clock=clock))
    response = await _post(client, "/v1/models/gemini-2.5-flash:streamGenerateContent")
    chunks = response.json()
    assert isinstance(chunks, list)
    assert "usageMetadata" in chunks[-1]


async def test_batch_moves_through_its_states_on_the_clock(
    clock: FakeClock, open_client: ClientFactory
) -> None:
    scenario = {"quotas": False, "batch": {"pending_seconds": 10, "seconds_per_request": 5}}
    client = open_client(Emulator(scenario, clock=clock))
    body = {"batch": {"display_name": "b", "input_config": {"requests": {"requests": [
        {"request": _body("one"), "metadata": {"key": "1"}},
        {"request": {"contents": []}, "metadata": {"key": "2"}},
    ]}}}}  # fmt: skip
    created = await _post(client, "/v1beta/models/gemini-2.5-flash:batchGenerateContent", body)
    name = created.json()["name"]
    assert created.json()["metadata"]["state"] == "BATCH_STATE_PENDING"

    async def state() -> dict[str, Any]:
        got: dict[str, Any] = (
            await client.get(f"/v1beta/{name}", headers={"x-goog-api-key": "k1"})
        ).json()
        return got

    clock.advance(10)
    assert (await state())["metadata"]["state"] == "BATCH_STATE_RUNNING"
    clock.advance(10)
    done = await state()
    assert done["done"] is True
    assert done["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    first, second = done["metadata"]["output"]["inlinedResponses"]["inlinedResponses"]
    assert first["metadata"] == {"key": "1"}
    assert first["response"]["candidates"]
    assert second["error"]["code"] == 3
    assert "contents is not specified" in second["error"]["message"]
    other = await client.get(f"/v1beta/{name}", headers={"x-goog-api-key": "someone-else"})
    assert other.status_code == 404


async def test_cache_expires_on_the_clock(clock: FakeClock, open_client: ClientFactory) -> None:
    client = open_client(Emulator({"quotas": False, "cache_min_tokens": 10}, clock=clock))
    created = await client.post(
        "/v1beta/cachedContents",
        json={
            "model": "models/gemini-2.5-flash",
            "contents": [{"role": "user", "parts": [{"text": "y" * 400}]}],
            "ttl": "60s",
        },
        headers={"x-goog-api-key": "k1"},
    )
    assert created.status_code == 200
    name = created.json()["name"]
    assert created.json()["usageMetadata"]["totalTokenCount"] == 100
    used = await _post(client, body={**_body("q"), "cachedContent": name})
    usage = used.json()["usageMetadata"]
    assert usage["cachedContentTokenCount"] == 100
    assert usage["promptTokenCount"] == 101
    small = await client.post(
        "/v1beta/cachedContents",
        json={"model": "models/gemini-2.5-flash", "contents": [{"parts": [{"text": "y"}]}]},
        headers={"x-goog-api-key": "k1"},
    )
    assert "Cached content is too small" in small.json()["error"]["message"]
    clock.advance(60)
    gone = await client.get(f"/v1beta/{name}", headers={"x-goog-api-key": "k1"})
    assert gone.status_code == 403
    assert (await _post(client, body={**_body("q"), "cachedContent": name})).status_code == 403
