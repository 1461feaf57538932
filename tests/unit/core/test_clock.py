"""The Clock is the only source of time; these pin each implementation's contract."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from gemini_guard import Clock, FakeClock, ScaledClock, SystemClock


@pytest.mark.parametrize("clock", [SystemClock(), ScaledClock(10), FakeClock()])
def test_every_clock_satisfies_the_protocol(clock: Clock) -> None:
    assert isinstance(clock, Clock)


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(start=1_000.0, monotonic=5.0)
    assert (clock.monotonic(), clock.time()) == (5.0, 1_000.0)
    clock.advance(2.5)
    assert (clock.monotonic(), clock.time()) == (7.5, 1_002.5)
    clock.set_time(1_010.0)
    assert clock.time() == 1_010.0
    assert clock.monotonic() == 15.0


def test_fake_clock_refuses_to_go_back() -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match="back in time"):
        clock.advance(-1)


def test_fake_clock_sync_sleep_advances_and_records() -> None:
    clock = FakeClock()
    clock.sleep(1.5)
    clock.sleep(0)
    clock.sleep(2)
    assert clock.monotonic() == 3.5
    assert clock.sleeps == [1.5, 0, 2]


async def test_fake_clock_concurrent_async_sleepers_overlap() -> None:
    # Three tasks sleeping 1, 2 and 3 s together finish at t=3, not t=6.
    clock = FakeClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.asleep(seconds)
        woke.append((name, clock.monotonic()))

    await asyncio.gather(sleeper("c", 3), sleeper("a", 1), sleeper("b", 2))
    assert woke == [("a", 1.0), ("b", 2.0), ("c", 3.0)]
    assert clock.monotonic() == 3.0


async def test_fake_clock_chained_async_sleeps_add_up() -> None:
    clock = FakeClock()
    for _ in range(4):
        await clock.asleep(0.5)
    assert clock.monotonic() == 2.0
    assert clock.sleeps == [0.5, 0.5, 0.5, 0.5]


async def test_fake_clock_advance_wakes_async_sleeper_without_jumping_further() -> None:
    clock = FakeClock()
    task = asyncio.create_task(clock.asleep(10))
    await asyncio.sleep(0)  # let it park
    clock.advance(10)
    await asyncio.wait_for(task, timeout=5)
    assert clock.monotonic() == 10.0


async def test_fake_clock_cancelled_sleeper_does_not_pull_time_forward() -> None:
    clock = FakeClock()
    long_sleep = asyncio.create_task(clock.asleep(100))
    await asyncio.sleep(0)
    long_sleep.cancel()
    with pytest.raises(asyncio.CancelledError):
        await long_sleep
    await clock.asleep(1)
    assert clock.monotonic() == 1.0


def test_scaled_clock_runs_faster_and_sleeps_shorter() -> None:
    clock = ScaledClock(1000)
    start_real = time.monotonic()
    start = clock.monotonic()
    clock.sleep(50)  # 50 scaled seconds = 0.05 real seconds
    real = time.monotonic() - start_real
    scaled = clock.monotonic() - start
    assert 0.04 <= real < 1.0
    # Readings advance 1000x: the scaled elapsed time matches the real one scaled.
    assert scaled == pytest.approx(real * 1000, rel=0.2)
    assert clock.time() - clock.epoch == pytest.approx(clock.monotonic(), abs=1e-3 * 1000)


async def test_scaled_clock_async_sleep_is_scaled() -> None:
    clock = ScaledClock(1000)
    start = time.monotonic()
    await clock.asleep(30)
    assert 0.02 <= time.monotonic() - start < 1.0


def test_scaled_clocks_with_one_epoch_agree() -> None:
    # Two processes given the same epoch read the same scaled time; two objects made
    # at different moments stand in for them here.
    epoch = time.time() - 3.0
    first = ScaledClock(60, epoch=epoch)
    second = ScaledClock(60, epoch=epoch)
    assert first.monotonic() == pytest.approx(second.monotonic(), abs=0.05 * 60)
    assert first.monotonic() >= 3.0 * 60  # three real seconds since the epoch, scaled
    wall, mono = first.time(), first.monotonic()
    assert wall == pytest.approx(epoch + mono, abs=0.5)


def test_scaled_clock_rejects_nonpositive_factor() -> None:
    with pytest.raises(ValueError, match="factor must be > 0"):
        ScaledClock(0)


def test_fake_clock_is_safe_across_threads() -> None:
    clock = FakeClock()

    def work() -> None:
        for _ in range(1000):
            clock.advance(0.001)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert clock.monotonic() == pytest.approx(4.0)
