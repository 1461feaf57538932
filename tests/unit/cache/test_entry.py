"""An entry is decoded once and hands out fresh responses on each hit."""

from __future__ import annotations

from google.genai import types

from gemini_guard.cache import codec
from gemini_guard.cache.entry import Entry
from gemini_guard.cache.stats import savings_of

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
        sdk_http_response=types.HttpResponse(headers={"x-secret-header": "value"}),
    )


def test_an_entry_gives_what_decoding_its_value_gives() -> None:
    chunks = [answer("a", 10, 1), answer("b", 10, 5)]
    entry = Entry.encode(model=FLASH, responses=chunks, stream=True)
    model, stream, decoded = codec.decode(entry.value)
    assert (entry.model, entry.stream) == (model, stream) == (FLASH, True)
    assert entry.responses() == decoded
    assert Entry.decode(entry.value).responses() == decoded
    assert all(r.sdk_http_response is None for r in entry.responses())
    assert b"x-secret-header" not in entry.value


def test_savings_are_those_of_every_chunk() -> None:
    chunks = [answer("a", 1000, 10), answer("b", 1000, 500)]
    entry = Entry.encode(model=FLASH, responses=chunks, stream=True)
    first = savings_of(FLASH, chunks[0].usage_metadata)
    second = savings_of(FLASH, chunks[1].usage_metadata)
    assert entry.tokens_saved == first.tokens + second.tokens == 2510
    assert entry.dollars_saved == first.dollars + second.dollars
    assert entry.dollars_saved > 0


def test_each_hit_gets_its_own_objects() -> None:
    entry = Entry.encode(model=FLASH, responses=[answer("ab", 3, 2)], stream=False)
    (first,) = entry.responses()
    assert first.candidates is not None
    first.candidates[0].content.parts[0].text = "changed"  # type: ignore[union-attr,index]
    first.candidates.append(first.candidates[0])
    (second,) = entry.responses()
    assert second is not first
    assert second.text == "ab"
    assert second.candidates is not None
    assert len(second.candidates) == 1


def test_a_chat_completion_is_kept_as_bytes_with_its_savings() -> None:
    completion = (
        b'{"id":"c1","object":"chat.completion","model":"gemini-2.5-flash",'
        b'"choices":[{"index":0,"message":{"role":"assistant","content":"4"},'
        b'"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3}}'
    )
    entry = Entry.encode_wire(model=FLASH, bodies=[completion], stream=False, openai=True)
    again = Entry.decode(entry.value)  # as read back from a store
    expected = savings_of(
        FLASH,
        types.GenerateContentResponseUsageMetadata(prompt_token_count=12, candidates_token_count=3),
    )
    for kept in (entry, again):
        assert kept.wire == (completion,)  # the bytes the API sent
        assert kept.responses() == []  # no Gemini SDK object stands for it
        assert (kept.tokens_saved, kept.dollars_saved) == (15, expected.dollars)
    assert expected.dollars > 0


def test_a_chat_completion_without_usage_saves_nothing_counted() -> None:
    for body in (b'{"choices":[]}', b'{"usage":[1]}', b"[]"):
        entry = Entry.encode_wire(model=FLASH, bodies=[body], stream=False, openai=True)
        assert (entry.tokens_saved, entry.dollars_saved) == (0, 0.0)


def test_a_streamed_chat_completion_saves_what_its_usage_chunk_says() -> None:
    chunks = [
        b'{"choices":[{"index":0,"delta":{"content":"4"},"finish_reason":"stop"}]}',
        b'{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3}}',
        b"[DONE]",
    ]
    entry = Entry.encode_wire(model=FLASH, bodies=chunks, stream=True, openai=True)
    assert entry.wire == tuple(chunks)
    assert entry.tokens_saved == 15
