"""A cache over a shared store adds its counters to the store's, in batches."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from google.genai import types

from gemini_guard.cache import ResponseCache
from gemini_guard.cache.entry import Entry
from gemini_guard.cache.stats import CacheStats
from gemini_guard.cache.stores import open_cache_store
from gemini_guard.cache.stores.memory import MemoryCacheStore
from gemini_guard.clock import FakeClock
from gemini_guard.errors import StoreError

FLASH = "gemini-2.5-flash"


def answer(text: str, prompt: int, output: int) -> types.GenerateContentResponse:
    return types.GenerateContentResponse(
        candidates=[
            types.Candidate(
                content=types.Content(role="model", parts=[types.Part(text=text)]),
                finish_reason=types.FinishReason.STOP,
            )
        ],
        usage_metadata=types.GenerateContentResponseUsageMetadata(
            prompt_token_count=prompt, candidates_token_count=output
        ),
    )


def written(url: str) -> dict[str, CacheStats]:
    reader = open_cache_store(url)
    try:
        return {p: CacheStats.from_counts(c) for p, c in reader.read_stats().items()}
    finally:
        reader.close()


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cache.db'}"


def serve_twice(cache: ResponseCache, request: str = "abc") -> Entry:
    """A miss that is kept, then a hit on it."""
    entry = Entry.encode(model=FLASH, responses=[answer("hi", 100, 20)], stream=False)
    key = f"{cache.project}/{request}"
    assert cache.lookup(key) is None
    cache.miss()
    cache.keep(key, entry, 60, stream=False)
    assert cache.lookup(key) is not None
    return entry


def test_counts_reach_the_store_once_per_interval_and_on_close(url: str) -> None:
    clock = FakeClock()
    cache = ResponseCache(url, project="team-a", clock=clock, stats_interval=10.0)
    entry = serve_twice(cache)
    label = cache.stats_label  # counters are filed under a fingerprint, never the name
    # The put wrote the miss at once; the hit counted after it waits for the interval.
    assert (written(url)[label].misses, written(url)[label].hits) == (1, 0)
    assert cache.lookup("team-a/abc") is not None  # within the interval: nothing written
    assert written(url)[label].hits == 0
    clock.advance(10.0)
    # The next access writes what was counted before it (its own hit comes after).
    assert cache.lookup("team-a/abc") is not None
    stats = written(url)[label]
    assert (stats.hits, stats.misses, stats.stored) == (2, 1, 1)
    assert stats.tokens_saved == 2 * entry.tokens_saved == 240
    assert stats.dollars_saved == pytest.approx(2 * entry.dollars_saved)
    assert stats.dollars_saved > 0
    cache.answer("team-a/abc", entry, coalesced=True)  # no store access: pending
    cache.close()
    stats = written(url)[label]
    assert (stats.hits, stats.coalesced) == (3, 1)
    mine = cache.stats()
    assert stats.dollars_saved == pytest.approx(mine.dollars_saved)
    assert replace(stats, dollars_saved=0.0) == replace(mine, dollars_saved=0.0)


def test_two_caches_on_one_file_add_up_per_project(url: str) -> None:
    clock = FakeClock()
    first = ResponseCache(url, project="team-a", clock=clock)
    second = ResponseCache(url, project="team-a", clock=clock)
    other = ResponseCache(url, project="team-b", clock=clock)
    for n, cache in enumerate((first, second, other)):
        serve_twice(cache, request=f"r{n}")
        cache.close()
    stats = written(url)
    team_a, team_b = first.stats_label, other.stats_label
    assert second.stats_label == team_a != team_b
    assert set(stats) == {team_a, team_b}
    assert (stats[team_a].hits, stats[team_a].misses) == (2, 2)
    assert (stats[team_b].hits, stats[team_b].misses) == (1, 1)


def test_a_failing_write_keeps_the_counts_for_later(url: str) -> None:
    class Flaky(MemoryCacheStore[bytes]):
        local = False  # counted as shared
        broken = True

        def add_stats(self, project: str, deltas: object) -> None:
            if self.broken:
                raise StoreError("the store is down")
            super().add_stats(project, deltas)  # type: ignore[arg-type]

    store = Flaky()
    cache = ResponseCache(url, project="p", clock=FakeClock(), store=store)
    cache.miss()
    assert cache.flush_stats() is False  # logged, never raised
    assert store.read_stats() == {}
    store.broken = False
    cache.miss()
    assert cache.flush_stats() is True
    assert store.read_stats() == {cache.stats_label: {"misses": 2}}


def test_a_memory_cache_writes_no_counters() -> None:
    cache = ResponseCache("memory://", project="p", clock=FakeClock())
    serve_twice(cache)
    assert cache.stats().hits == 1
    assert cache.store.read_stats() == {}
    cache.close()


def test_counts_left_unwritten_are_written_when_the_process_exits(url: str) -> None:
    program = (
        "from gemini_guard.cache import ResponseCache\n"
        f"cache = ResponseCache({url!r}, project='p', stats_interval=3600)\n"
        "cache.miss(); cache.miss()\n"  # counted, never closed, never flushed
    )
    subprocess.run([sys.executable, "-c", program], check=True, timeout=60)
    reader = ResponseCache(url, project="p")  # the same store, so the same fingerprint
    label = reader.stats_label
    reader.close()
    assert written(url)[label].misses == 2
