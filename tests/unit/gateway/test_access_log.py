"""The served gateway's access log: entries kept, then written as whole JSON lines."""

from __future__ import annotations

import asyncio
import io
import json
import select

from gemini_guard.gateway.access_log import AccessLog


class Recorded(io.BytesIO):
    """A stream that remembers each write on its own."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.writes.append(bytes(data))
        return super().write(data)


class Broken(io.BytesIO):
    def write(self, data: bytes) -> int:  # type: ignore[override]
        raise OSError(32, "Broken pipe")


def _lines(stream: Recorded) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_entries_wait_for_the_batch_and_come_out_in_order() -> None:
    stream = Recorded()
    log = AccessLog(stream, delay=3600, max_lines=3)
    log.add({"n": 1, "path": "/v1beta/models/m:generateContent"})
    log.add({"n": 2, "path": "/v1beta/models"})
    assert stream.writes == []
    log.add({"n": 3, "path": "/v1beta/models"})
    assert [line["n"] for line in _lines(stream)] == [1, 2, 3]
    log.close()


def test_a_batch_goes_out_in_whole_lines_no_longer_than_a_pipe_takes_at_once() -> None:
    stream = Recorded()
    log = AccessLog(stream, max_lines=1000)
    for n in range(300):
        log.add({"n": n, "caller": "app", "path": "/v1beta/models/gemini-2.5-flash:x" + "y" * n})
    log.flush()
    assert len(stream.writes) > 1
    assert all(len(w) <= select.PIPE_BUF or w.count(b"\n") == 1 for w in stream.writes)
    assert all(w.endswith(b"\n") for w in stream.writes)
    assert [line["n"] for line in _lines(stream)] == list(range(300))
    log.close()


async def test_on_a_loop_the_batch_is_written_after_the_delay_without_more_requests() -> None:
    stream = Recorded()
    log = AccessLog(stream, delay=0)
    log.add({"n": 1})
    log.add({"n": 2})
    assert stream.writes == []  # not in the request's own step
    for _ in range(3):
        await asyncio.sleep(0)
    assert [line["n"] for line in _lines(stream)] == [1, 2]
    assert len(stream.writes) == 1
    log.close()


def test_without_a_loop_an_entry_is_written_at_once() -> None:
    stream = Recorded()
    log = AccessLog(stream)
    log.add({"n": 1})
    assert _lines(stream) == [{"n": 1}]
    log.close()


async def test_closing_writes_what_is_left_once() -> None:
    stream = Recorded()
    log = AccessLog(stream, delay=3600, max_lines=10)
    log.add({"n": 1})
    assert stream.writes == []
    log.close()
    log.flush()
    assert _lines(stream) == [{"n": 1}]


def test_a_broken_stream_loses_lines_not_requests() -> None:
    log = AccessLog(Broken(), max_lines=1)
    log.add({"n": 1})  # no exception reaches the request
    log.close()
