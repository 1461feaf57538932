"""Stored answers come back as the SDK's own, equal, independent objects."""

from __future__ import annotations

import datetime as dt

from google.genai import types

from gemini_guard.cache import codec


def sample() -> types.GenerateContentResponse:
    return types.GenerateContentResponse(
        candidates=[
            types.Candidate(
                content=types.Content(
                    role="model",
                    parts=[
                        types.Part(text="a", thought_signature=b"\x00\xffsig"),
                        types.Part(text="b"),
                    ],
                ),
                finish_reason=types.FinishReason.STOP,
                index=0,
            )
        ],
        create_time=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        usage_metadata=types.GenerateContentResponseUsageMetadata(
            prompt_token_count=3,
            candidates_token_count=2,
            prompt_tokens_details=[
                types.ModalityTokenCount(modality=types.MediaModality.TEXT, token_count=3)
            ],
        ),
        model_version="gemini-2.5-flash",
        sdk_http_response=types.HttpResponse(headers={"x-secret-header": "value"}),
    )


def test_round_trip_equals_model_validate() -> None:
    original = sample()
    value = codec.encode(model="gemini-2.5-flash", responses=[original], stream=False)
    model, stream, (back,) = codec.decode(value)
    assert (model, stream) == ("gemini-2.5-flash", False)
    assert isinstance(back, types.GenerateContentResponse)
    assert back == types.GenerateContentResponse.model_validate(codec.to_json(original))
    assert back.text == "ab"
    assert back.candidates is not None
    assert back.candidates[0].finish_reason is types.FinishReason.STOP
    assert back.candidates[0].content.parts[0].thought_signature == b"\x00\xffsig"  # type: ignore[union-attr,index]
    assert back.sdk_http_response is None
    assert b"x-secret-header" not in value


def test_each_decode_is_a_fresh_object() -> None:
    value = codec.encode(model="m", responses=[sample()], stream=False)
    first = codec.decode(value)[2][0]
    first.candidates[0].content.parts[0].text = "changed"  # type: ignore[index,union-attr]
    assert codec.decode(value)[2][0].text == "ab"
