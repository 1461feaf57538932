"""The fast path of `request_key` writes exactly the general path's canonical JSON."""

from __future__ import annotations

import enum
import hashlib
import math
from typing import Any

import pytest
from google.genai import types
from hypothesis import given, settings
from hypothesis import strategies as st

from gemini_guard.cache.keys import _fast_payload, canonical_request, digest, request_key

FLASH = "gemini-2.5-flash"


def general(model: Any, contents: Any, config: Any) -> str:
    return canonical_request(model=model, contents=contents, config=config).as_json()


@pytest.mark.parametrize(
    ("contents", "config"),
    [
        ("hello there", {"temperature": 0}),
        ("hello there", None),
        ("", {}),
        ('ünïcödé \u2028 "quoted" \\ \n\t \x00 😀', {"temperature": 0.0}),
        (["a", "b", "c"], {"temperature": 0, "top_k": 40.0, "top_p": 0.95}),
        ("hi", {"maxOutputTokens": 10, "max_output_tokens": 12, "seed": 7}),
        ("hi", {"temperature": 0, "system_instruction": "be brief"}),
        ("hi", {"systemInstruction": "be brief", "responseMimeType": "application/json"}),
        ("hi", {"temperature": 1e20, "presence_penalty": -0.0, "frequency_penalty": 0.5}),
        ("hi", {"temperature": 0, "labels": None, "http_options": None}),
        ("hi", {"temperature": 0, "should_return_http_response": True}),
        ("hi", {"temperature": 0, "not_a_field": "kept as written", "candidateCount": 1}),
        ("hi", {"temperature": 0, "response_logprobs": False, "logprobs": 3}),
        ("hi", types.GenerateContentConfig(temperature=0)),
        ("hi", types.GenerateContentConfig(temperature=0.3, max_output_tokens=5, seed=1)),
        (["x"], types.GenerateContentConfig(system_instruction="sys", candidate_count=1)),
    ],
)
def test_common_shapes_take_the_fast_path_and_match(contents: Any, config: Any) -> None:
    for model in (FLASH, f"models/{FLASH}"):
        fast = _fast_payload(model, contents, config)
        assert fast is not None, "expected the fast path for this shape"
        assert fast == general(model, contents, config)


class Mode(enum.Enum):
    ON = "on"


@pytest.mark.parametrize(
    ("contents", "config"),
    [
        ("hi", {"temperature": float("nan")}),
        ("hi", {"temperature": float("inf")}),
        ("hi", {"temperature": 0, "thinking_config": {"thinking_budget": 0}}),
        ("hi", {"temperature": 0, "labels": {"team": "a"}}),
        ("hi", {"temperature": 0, "http_options": {"timeout": 5}}),
        ("hi", {"temperature": 0, "mode": Mode.ON}),
        ("hi", {1: 0}),
        ([], {"temperature": 0}),
        (["a", types.Part(text="b")], {"temperature": 0}),
        ([{"role": "user", "parts": [{"text": "hi"}]}], {"temperature": 0}),
        (
            "hi",
            types.GenerateContentConfig(
                temperature=0, tools=[types.Tool(code_execution=types.ToolCodeExecution())]
            ),
        ),
        (
            "hi",
            types.GenerateContentConfig(
                media_resolution=types.MediaResolution.MEDIA_RESOLUTION_LOW
            ),
        ),
    ],
)
def test_other_shapes_go_the_general_way(contents: Any, config: Any) -> None:
    assert _fast_payload(FLASH, contents, config) is None


def test_keys_of_fast_and_general_shapes_of_one_request_agree() -> None:
    fast = request_key(project="p", model=FLASH, contents="hi", config={"temperature": 0})
    slow = request_key(
        project="p",
        model=FLASH,
        contents=[types.Content(role="user", parts=[types.Part(text="hi")])],
        config={"temperature": 0, "thinking_config": None, "labels": {"team": "a"}},
    )
    assert fast is not None
    assert fast == slow


CONFIG_KEYS = [
    "temperature",
    "top_p",
    "topP",
    "top_k",
    "candidate_count",
    "maxOutputTokens",
    "max_output_tokens",
    "seed",
    "system_instruction",
    "response_mime_type",
    "labels",
    "http_options",
    "should_return_http_response",
    "an_unknown_name",
    "ÄnotherName",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
configs = st.one_of(
    st.none(),
    st.dictionaries(st.sampled_from(CONFIG_KEYS), scalars, max_size=6),
    st.builds(
        types.GenerateContentConfig,
        temperature=st.none() | st.floats(min_value=0, max_value=2),
        max_output_tokens=st.none() | st.integers(min_value=1, max_value=10_000),
        system_instruction=st.none() | st.text(max_size=10),
        seed=st.none() | st.integers(min_value=0, max_value=2**31),
    ),
)
contents_shapes = st.one_of(st.text(max_size=30), st.lists(st.text(max_size=10), max_size=4))


@settings(max_examples=300, deadline=None)
@given(contents=contents_shapes, config=configs, model=st.sampled_from([FLASH, f"models/{FLASH}"]))
def test_the_fast_path_never_disagrees_with_the_general_one(
    contents: Any, config: Any, model: str
) -> None:
    fast = _fast_payload(model, contents, config)
    values = config.values() if isinstance(config, dict) else []
    plain = all(not isinstance(v, float) or math.isfinite(v) for v in values)
    if contents != [] and plain:
        assert fast is not None, "a plain request should take the fast path"
    if fast is not None:
        assert fast == general(model, contents, config)


def test_the_digest_is_the_versioned_sha256_of_namespace_and_payload() -> None:
    # Stored entries outlive a release: the digest's input bytes must not drift.
    payload = general(FLASH, "ünï 😀", {"temperature": 0})
    expected = hashlib.sha256(
        b"gemini-guard-cache/v1\x00" + "prøj".encode() + b"\x00" + payload.encode()
    ).hexdigest()
    assert digest("prøj", payload) == expected
    assert (
        request_key(project="prøj", model=FLASH, contents="ünï 😀", config={"temperature": 0})
        == f"prøj/{expected}"
    )
