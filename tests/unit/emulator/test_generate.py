"""Generated answers: deterministic, counted with the project's one token estimate."""

from __future__ import annotations

import json
import random

from gemini_guard.emulator import generate as generate_module
from gemini_guard.emulator.generate import generate, request_tokens, response_json, split_for_stream
from gemini_guard.tokens import estimate_text_tokens, estimate_tokens


def _contents(text: str) -> list[dict[str, object]]:
    return [{"role": "user", "parts": [{"text": text}]}]


def test_same_request_same_answer_different_prompt_different_answer() -> None:
    a = generate(model="gemini-2.5-flash", contents=_contents("What is a quota?"))
    b = generate(model="gemini-2.5-flash", contents=_contents("What is a quota?"))
    c = generate(model="gemini-2.5-flash", contents=_contents("What is a window?"))
    d = generate(model="gemini-2.5-pro", contents=_contents("What is a quota?"))
    assert a == b
    assert a.candidates[0].text != c.candidates[0].text
    assert a.candidates[0].text != d.candidates[0].text


def test_token_counts_use_the_shared_estimate() -> None:
    contents = _contents("x" * 41)
    system = {"parts": [{"text": "be brief"}]}
    gen = generate(model="gemini-2.5-flash", contents=contents, system=system)
    assert gen.prompt_tokens == estimate_tokens(contents) + estimate_tokens(system) == 11 + 2
    assert gen.prompt_tokens == request_tokens(contents, system)
    for cand in gen.candidates:
        assert cand.tokens == estimate_text_tokens(cand.text)
        assert cand.finish_reason == "STOP"


def test_max_output_tokens_truncates_with_max_tokens_reason() -> None:
    gen = generate(
        model="gemini-2.5-flash", contents=_contents("hi"), config={"maxOutputTokens": 3}
    )
    (cand,) = gen.candidates
    assert (cand.tokens, cand.finish_reason) == (3, "MAX_TOKENS")


def test_candidate_count_gives_distinct_candidates() -> None:
    gen = generate(model="gemini-2.5-flash", contents=_contents("hi"), config={"candidateCount": 3})
    assert len({c.text for c in gen.candidates}) == 3
    assert gen.output_tokens == sum(c.tokens for c in gen.candidates)


def test_json_mode_follows_the_schema() -> None:
    schema = {
        "type": "OBJECT",
        "properties": {
            "name": {"type": "STRING"},
            "age": {"type": "INTEGER"},
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}},
            "mood": {"type": "STRING", "enum": ["calm", "busy"]},
        },
    }
    gen = generate(
        model="gemini-2.5-flash",
        contents=_contents("person"),
        config={"responseMimeType": "application/json", "responseSchema": schema},
    )
    value = json.loads(gen.candidates[0].text)
    assert set(value) == {"name", "age", "tags", "mood"}
    assert isinstance(value["age"], int)
    assert isinstance(value["tags"], list)
    assert value["mood"] in ("calm", "busy")


def test_stream_chunks_reassemble_to_the_whole_answer_with_usage_last() -> None:
    gen = generate(
        model="gemini-2.5-flash", contents=_contents("stream me"), config={"candidateCount": 2}
    )
    whole = response_json(gen, model="gemini-2.5-flash", response_id="r")
    chunks = list(split_for_stream(gen, model="gemini-2.5-flash", response_id="r", chunk_tokens=4))
    assert len(chunks) > 2
    for index, cand in enumerate(gen.candidates):
        text = "".join(
            c["content"]["parts"][0]["text"]
            for chunk in chunks
            for c in chunk["candidates"]
            if c["index"] == index
        )
        assert text == cand.text
    assert all("usageMetadata" not in c for c in chunks[:-1])
    assert chunks[-1]["usageMetadata"] == whole["usageMetadata"]
    assert {c["finishReason"] for c in chunks[-1]["candidates"]} == {"STOP"}


def _prose_by_whole_estimates(rng: random.Random, target_tokens: int) -> str:
    """The answer's prose as first written: the whole text estimated after each sentence."""
    words: list[str] = []
    text = ""
    while estimate_text_tokens(text) < target_tokens:
        sentence = [rng.choice(generate_module._WORDS) for _ in range(rng.randint(6, 12))]
        sentence[0] = sentence[0].capitalize()
        words.append(" ".join(sentence) + ".")
        text = " ".join(words)
    return text


def test_prose_is_the_text_it_was_when_the_whole_was_estimated_after_each_sentence() -> None:
    # Answers are deterministic across versions too: a recorded run replays the same.
    for seed in range(300):
        target = seed % 90
        ours, tokens = generate_module._counted_prose(random.Random(seed), target)
        assert ours == _prose_by_whole_estimates(random.Random(seed), target)
        assert tokens == estimate_text_tokens(ours) >= target
