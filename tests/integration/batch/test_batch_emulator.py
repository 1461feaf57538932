"""`guard.batch` / `guard.abatch` and `--mode batch-api` against the emulator, real SDK."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from google import genai
from google.genai import types

from gemini_guard.batch.batch_api import run_batch_api
from gemini_guard.batch.job import JobFiles, prepare
from gemini_guard.batch.journal import Journal
from gemini_guard.clock import FakeClock
from gemini_guard.emulator import serve
from gemini_guard.guard import Guard


def _client(base_url: str) -> genai.Client:
    return genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=base_url))


def test_guard_batch_sync_and_async_give_one_result_per_request() -> None:
    clock = FakeClock()
    with serve("healthy", clock=clock) as server:
        guard = Guard(client=_client(server.base_url), clock=clock, log=False)
        requests: list[dict[str, Any]] = [
            {"id": f"r{i}", "prompt": f"hello {i}"} for i in range(12)
        ]
        requests.append({"id": "broken", "prompt": "x", "config": {"temperature": 9}})
        results = {r.id: r for r in guard.batch(requests, concurrency=3)}
        assert set(results) == {f"r{i}" for i in range(12)} | {"broken"}
        assert all(results[f"r{i}"].ok and results[f"r{i}"].text for i in range(12))
        assert results["r0"].model == "gemini-2.5-flash"
        assert results["r0"].usage
        assert results["r0"].usage["prompt_token_count"] > 0
        assert not results["broken"].ok
        assert results["broken"].error is not None
        assert results["broken"].error.category == "bad_request"

        async def collect() -> dict[str, str | None]:
            try:
                return {r.id: r.text async for r in guard.abatch(requests[:12], concurrency=4)}
            finally:
                await guard.unguarded_client.aio.aclose()

        import asyncio

        texts = asyncio.run(collect())
        # The emulator's answers are deterministic: the same prompts, the same texts.
        assert texts == {k: v.text for k, v in results.items() if k != "broken"}


def test_batch_api_mode_submits_polls_on_the_clock_and_writes_the_output(tmp_path: Path) -> None:
    clock = FakeClock()
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(
        "".join(json.dumps({"id": f"b{i}", "prompt": f"item {i}"}) + "\n" for i in range(5))
        + json.dumps({"id": "other", "prompt": "x", "model": "gemini-2.5-pro"})
        + "\n"
    )
    with serve("healthy", clock=clock) as server:
        client = _client(server.base_url)
        files = JobFiles.of(source, out)
        with Journal(files.journal) as journal:
            prepared = prepare(files, journal)
            messages: list[str] = []
            summary = run_batch_api(
                client, prepared, journal, model="gemini-2.5-flash", clock=clock,
                say=messages.append,
            )  # fmt: skip
            assert journal.get("batch_api.job") is None  # finished: nothing to resume
        # The emulator: 30 s pending + 2 s per request; polls every 10 s, x1.5 each.
        assert clock.sleeps[:3] == [10.0, 15.0, 22.5]
        assert any("succeeded" in m for m in messages)
    rows = {row["id"]: row for row in map(json.loads, out.read_text().splitlines())}
    assert sorted(rows) == ["b0", "b1", "b2", "b3", "b4", "other"]
    assert all(rows[f"b{i}"]["ok"] and rows[f"b{i}"]["text"] for i in range(5))
    assert rows["other"]["ok"] is False
    assert summary.done == 5
    assert summary.failed == 1


def test_batch_api_resumes_the_journaled_job_instead_of_submitting_again(tmp_path: Path) -> None:
    clock = FakeClock()
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps({"id": f"b{i}", "prompt": "p"}) + "\n" for i in range(3)))
    with serve("healthy", clock=clock) as server:
        client = _client(server.base_url)
        job = client.batches.create(
            model="gemini-2.5-flash",
            src=[types.InlinedRequest(contents="p") for _ in range(3)],
            config={"display_name": "gemini-guard-earlier"},
        )
        files = JobFiles.of(source, out)
        with Journal(files.journal) as journal:
            # A previous run died after creating the job, before journaling its name.
            journal.set("batch_api.ids", json.dumps(["b0", "b1", "b2"]))
            journal.set("batch_api.display_name", "gemini-guard-earlier")
            summary = run_batch_api(
                client, prepare(files, journal), journal, model="gemini-2.5-flash", clock=clock
            )
        assert [j.name for j in client.batches.list()] == [job.name]  # no second job
    assert summary.done == 3
