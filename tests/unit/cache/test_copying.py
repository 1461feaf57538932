"""A copier hands out equal, independent copies of a template response."""

from __future__ import annotations

import datetime as dt

from google.genai import types
from pydantic import BaseModel

from gemini_guard.cache import codec
from gemini_guard.cache.copying import copier


def template() -> types.GenerateContentResponse:
    original = types.GenerateContentResponse(
        candidates=[
            types.Candidate(
                content=types.Content(
                    role="model",
                    parts=[
                        types.Part(text="a", thought_signature=b"\x00\xffsig"),
                        types.Part(
                            function_call=types.FunctionCall(
                                name="f", args={"city": "Oslo", "days": [1, 2]}
                            )
                        ),
                    ],
                ),
                finish_reason=types.FinishReason.STOP,
                index=0,
            )
        ],
        create_time=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        usage_metadata=types.GenerateContentResponseUsageMetadata(
            prompt_token_count=3,
            prompt_tokens_details=[
                types.ModalityTokenCount(modality=types.MediaModality.TEXT, token_count=3)
            ],
        ),
        model_version="gemini-2.5-flash",
    )
    # What a store holds: the decoded stored form.
    value = codec.encode(model="m", responses=[original], stream=False)
    return codec.decode(value)[2][0]


def test_a_copy_equals_the_template_and_is_the_same_type() -> None:
    source = template()
    copy = copier(source)()
    assert type(copy) is types.GenerateContentResponse
    assert copy == source
    assert copy.model_dump() == source.model_dump()
    assert copy.model_fields_set == source.model_fields_set
    assert copy.candidates is not None
    assert copy.candidates[0].finish_reason is types.FinishReason.STOP


def test_changing_a_copy_at_any_depth_leaves_the_template_and_later_copies_alone() -> None:
    source = template()
    expected = source.model_dump()
    make = copier(source)
    copy = make()
    assert copy.candidates is not None
    assert copy.usage_metadata is not None
    content = copy.candidates[0].content
    assert content is not None
    assert content.parts is not None
    content.parts[0].text = "changed"
    content.parts.append(types.Part(text="extra"))
    call = content.parts[1].function_call
    assert call is not None
    assert call.args is not None
    call.args["city"] = "Bergen"
    call.args["days"].append(3)
    copy.candidates.clear()
    copy.usage_metadata.prompt_token_count = 99
    copy.model_version = "other"
    assert source.model_dump() == expected
    fresh = make()
    assert fresh.model_dump() == expected
    assert fresh.model_fields_set == source.model_fields_set


def test_setting_a_field_on_a_copy_does_not_mark_it_set_on_the_template() -> None:
    source = template()
    copy = copier(source)()
    copy.response_id = "abc"
    assert "response_id" in copy.model_fields_set
    assert "response_id" not in source.model_fields_set
    assert "response_id" not in copier(source)().model_fields_set


def test_values_of_unknown_kinds_are_deep_copied() -> None:
    class Box(BaseModel):
        pair: tuple[list[int], int]
        items: list[list[int]]

    source = Box(pair=([1], 2), items=[[1, 2], [3]])
    copy = copier(source)()
    copy.pair[0].append(9)
    copy.items[0].append(9)
    assert source == Box(pair=([1], 2), items=[[1, 2], [3]])
    assert copier(source)() == source
