"""Reading a relayed stream back into its chunks, to keep it only once it came whole."""

from __future__ import annotations

from gemini_guard.gateway.cache import sse_events


def test_each_event_gives_its_data_as_sent() -> None:
    stream = b'data: {"a":1}\r\n\r\ndata: {"b":2}\r\n\r\n'
    assert sse_events(stream) == [b'{"a":1}', b'{"b":2}']


def test_bare_newlines_multi_line_data_and_other_fields() -> None:
    stream = b'event: chunk\ndata:{"a":\ndata: 1}\n\n: a comment\n\ndata: {"b":2}\n\n'
    # One space after the colon is the separator; lines of one event join with "\n".
    assert sse_events(stream) == [b'{"a":\n1}', b'{"b":2}']


def test_a_stream_cut_inside_an_event_or_with_none_gives_nothing() -> None:
    assert sse_events(b'data: {"a":1}\r\n\r\ndata: {"b":') is None
    assert sse_events(b'data: {"a":1}\r\n') is None
    assert sse_events(b"") is None
    assert sse_events(b": only a comment\n\n") is None
