"""The one token estimate shared by the validator, the limiter and the emulator."""

from __future__ import annotations

import itertools
import json
import string
from pathlib import Path

import pytest
from google.genai import types
from hypothesis import given, settings
from hypothesis import strategies as st

from gemini_guard.tokens import (
    MAX_TOKENS_PER_CHAR,
    MEDIA_PART_TOKENS,
    TextTally,
    count_text,
    estimate_text_tokens,
    estimate_tokens,
)
from gemini_guard.tokens import estimate as estimate_module

CALIBRATION = Path(__file__).parents[2] / "fixtures" / "token-calibration.json"


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("a", 1),
        ("What is your name?", 5),  # 4 words and "?": Gemini counts 5 as well
        ("timestamps", 1),  # up to 10 letters, a word is one token
        ("identifiers", 3),  # a longer word costs a token per 4 letters
        ("GoogleGenAI", 3),  # camelCase splits: Google, Gen, AI
        ("20261204", 8),  # digit by digit
    ],
)
def test_text_is_read_by_script(text: str, tokens: int) -> None:
    assert estimate_text_tokens(text) == tokens


def test_chinese_costs_far_more_per_character_than_english() -> None:
    chinese = count_text("你好，世界！")
    assert (chinese.han, chinese.fullwidth_punct) == (4, 2)
    assert estimate_text_tokens("你好，世界！") == 5  # ceil(4 * 0.6 + 2)
    english = "Hello there, world!"
    assert estimate_text_tokens("天" * len(english)) > 2 * estimate_text_tokens(english)


def test_code_counts_indentation_lines_and_symbols() -> None:
    counts = count_text("def f(x):\n    return x + 1\n")
    assert counts.line_breaks == 2
    assert counts.indents == 1
    assert counts.symbols == 4  # ( ) : +
    assert counts.digits == 1


@pytest.mark.parametrize(
    "text",
    ["", "x" * 1000, "9" * 50, "，" * 30, "\n\n\n", "a b c", string.printable, "天" * 99],
)
def test_no_character_costs_more_than_one_token(text: str) -> None:
    assert estimate_text_tokens(text) <= len(text) * MAX_TOKENS_PER_CHAR


def _calibration() -> dict[str, list[tuple[int, int]]]:
    doc = json.loads(CALIBRATION.read_text("utf-8"))
    out: dict[str, list[tuple[int, int]]] = {}
    for sample in doc["samples"]:
        pair = (estimate_text_tokens(sample["text"]), sample["tokens"])
        out.setdefault(sample["script"], []).append(pair)
    return out


@pytest.mark.parametrize("script", ["en", "zh"])
def test_prose_is_within_a_quarter_of_the_real_count_text_by_text(script: str) -> None:
    # Real counts from Gemini's tokenizer (see the fixture's "about").
    pairs = _calibration()[script]
    assert len(pairs) >= 10
    for estimate, real in pairs:
        assert abs(estimate / real - 1) <= 0.25, (estimate, real)


@pytest.mark.parametrize(
    ("script", "bound"), [("en", 0.05), ("zh", 0.05), ("code", 0.10), ("mixed", 0.15)]
)
def test_totals_per_script_are_close_to_the_real_count(script: str, bound: float) -> None:
    pairs = _calibration()[script]
    estimated = sum(e for e, _ in pairs)
    real = sum(r for _, r in pairs)
    assert abs(estimated / real - 1) <= bound


def test_every_contents_shape_gives_the_same_count() -> None:
    text = "sliding windows " * 5  # 10 words, 10 tokens
    shapes = [
        text,
        [text],
        {"role": "user", "parts": [{"text": text}]},
        [{"role": "user", "parts": [{"text": text}]}],
        types.Content(role="user", parts=[types.Part(text=text)]),
        [types.Part(text=text)],
    ]
    assert [estimate_tokens(s) for s in shapes] == [10] * len(shapes)


def test_media_parts_count_a_fixed_amount() -> None:
    image = types.Part.from_bytes(data=b"\x89PNG....", mime_type="image/png")
    assert estimate_tokens([image, "abcd"]) == MEDIA_PART_TOKENS + 1  # one short word
    assert estimate_tokens(
        {"parts": [{"inlineData": {"mimeType": "image/png", "data": "AA=="}}]}
    ) == (MEDIA_PART_TOKENS)


def test_none_is_zero() -> None:
    assert estimate_tokens(None) == 0


_PIECES = [*"ab Z9\n\t.,!?-_", *"中文字かなカナ한국어，。éàüß", "  ", "supercalifragilistic"]


@settings(max_examples=300)
@given(st.lists(st.sampled_from(_PIECES), max_size=120).map("".join))
def test_the_fast_estimate_is_the_estimate_of_the_counts(text: str) -> None:
    # estimate_text_tokens skips building TextCounts on the hot path: same figure.
    assert estimate_text_tokens(text) == (count_text(text).tokens if text else 0)


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(
        alphabet=st.sampled_from(list("ab Zq.,\n\t 0197中文かな한국어Мир!?")) | st.characters(),
        max_size=120,
    ),
    cuts=st.lists(st.integers(min_value=0), max_size=8),
)
def test_a_tally_of_pieces_cut_where_runs_start_is_the_whole_texts_estimate(
    text: str, cuts: list[int]
) -> None:
    starts = [m.start() for m in estimate_module._RUNS.finditer(text)]
    bounds = sorted({starts[i % len(starts)] for i in cuts} | {0, len(text)}) if starts else [0]
    tally = TextTally()
    assert tally.tokens == 0
    for begin, end in itertools.pairwise(bounds):
        tally.add(text[begin:end])
    assert tally.tokens == estimate_text_tokens(text)


def test_a_tally_cut_inside_a_run_is_not_the_whole_texts_estimate() -> None:
    # Why pieces must start where runs start: "ab" is one word, "a" + "b" two.
    tally = TextTally()
    tally.add("a")
    tally.add("b")
    assert (tally.tokens, estimate_text_tokens("ab")) == (2, 1)
