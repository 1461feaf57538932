"""Every preflight rule: what it catches, what it lets through, and its did-you-mean."""

from __future__ import annotations

from typing import Any

import pytest
from google.genai import types

from gemini_guard.diagnosis import Category
from gemini_guard.validation import Problem, check_request, validate

FLASH = "gemini-2.5-flash"


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def only(problems: list[Problem], **match: Any) -> Problem:
    """The single problem whose fields equal `match`; fails listing all if not exactly one."""
    found = [p for p in problems if all(getattr(p, k) == v for k, v in match.items())]
    assert len(found) == 1, f"wanted one {match}, got: {[str(p) for p in problems]}"
    return found[0]


def sdk(config: Any = None, *, model: str = FLASH, contents: Any = "Say hi.") -> list[Problem]:
    return validate({"model": model, "contents": contents, "config": config})


# --- a good request passes ----------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        None,
        {},
        {"temperature": 0.0, "topP": 1.0, "topK": 1, "candidateCount": 8, "maxOutputTokens": 65536},
        {"temperature": 2.0, "top_p": 0.0, "top_k": 40, "candidate_count": 1},
        types.GenerateContentConfig(temperature=1.5, top_p=0.9, max_output_tokens=1024),
        {
            "system_instruction": "Be brief.",
            "thinkingConfig": {"thinking_budget": 0},
            "safety_settings": [
                {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}
            ],
        },
    ],
)
def test_valid_requests_have_no_problems(config: Any) -> None:
    assert sdk(config) == []


def test_valid_multi_turn_contents_pass() -> None:
    contents = [
        {"role": "user", "parts": [{"text": "Hi"}]},
        types.Content(role="model", parts=[types.Part(text="Hello")]),
        {"role": "user", "parts": [{"text": "Bye"}]},
    ]
    assert sdk(contents=contents) == []


# --- ranges --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("temperature", -0.1, "0.0–2.0"),
        ("temperature", 2.01, "0.0–2.0"),
        ("topP", 1.5, "0.0–1.0"),
        ("top_p", -0.5, "0.0–1.0"),
        ("topK", 0, "a whole number ≥ 1"),
        ("candidateCount", 0, "a whole number 1–8"),
        ("candidate_count", 9, "a whole number 1–8"),
        ("maxOutputTokens", 0, "a whole number 1–65536"),
        ("max_output_tokens", 65537, "a whole number 1–65536"),
    ],
)
def test_out_of_range_values_are_errors_naming_the_range(
    field: str, value: float, allowed: str
) -> None:
    problem = only(sdk({field: value}), code="out_of_range")
    assert problem.path == f"config.{field}"
    assert problem.allowed == allowed
    assert problem.severity == "error"
    assert problem.category is Category.BAD_REQUEST


@pytest.mark.parametrize(
    ("field", "inside"), [("temperature", 2.0), ("topP", 1.0), ("topK", 1), ("candidateCount", 8)]
)
def test_range_edges_are_allowed(field: str, inside: float) -> None:
    assert sdk({field: inside}) == []


def test_temperature_message_mentions_the_zero_to_one_guides() -> None:
    problem = only(sdk({"temperature": 3}), code="out_of_range")
    assert "0.0–2.0" in problem.message
    assert "0–1" in problem.message
    assert "0–1" in problem.message_zh


def test_ranges_are_checked_on_sdk_config_objects_too() -> None:
    config = types.GenerateContentConfig(temperature=2.5, candidate_count=12)
    problems = sdk(config)
    assert {p.path for p in problems} == {"config.temperature", "config.candidate_count"}


def test_max_output_tokens_is_checked_against_the_models_own_limit() -> None:
    small = {"name": "models/tiny", "inputTokenLimit": 1000, "outputTokenLimit": 100}
    problems = validate(
        {"model": "tiny", "contents": "x", "config": {"maxOutputTokens": 101}}, model_info=[small]
    )
    problem = only(problems, code="out_of_range")
    assert "tiny" in problem.message
    assert problem.allowed == "a whole number 1–100"
    ok = validate(
        {"model": "tiny", "contents": "x", "config": {"maxOutputTokens": 100}}, model_info=[small]
    )
    assert ok == []


def test_a_models_max_temperature_replaces_the_default_bound() -> None:
    cool = {"name": "models/cool", "maxTemperature": 1.0}
    problems = validate(
        {"model": "cool", "contents": "x", "config": {"temperature": 1.5}}, model_info=[cool]
    )
    assert only(problems, code="out_of_range").allowed == "0.0–1.0"


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({"temperature": "0.7"}, "config.temperature"),
        ({"topK": 2.5}, "config.topK"),
        ({"candidateCount": True}, "config.candidateCount"),
        ({"topP": float("nan")}, "config.topP"),
    ],
)
def test_wrong_types_are_errors(config: dict[str, Any], path: str) -> None:
    assert only(sdk(config), code="wrong_type").path == path


def test_the_same_field_twice_with_different_values_is_an_error() -> None:
    problem = only(sdk({"topP": 0.5, "top_p": 0.9}), code="duplicate_field")
    assert "topP" in problem.message
    assert "top_p" in problem.message


# --- field names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "suggested"),
    [
        ("max_tokens", "maxOutputTokens"),
        ("maxTokens", "maxOutputTokens"),
        ("max_new_tokens", "maxOutputTokens"),
        ("temprature", "temperature"),
        ("top_pp", "topP"),
        ("candidates_count", "candidateCount"),
        ("stop", "stopSequences"),
        ("n", "candidateCount"),
        ("system", "systemInstruction"),
        ("safety_setting", "safetySettings"),
        ("responseMimetype", "responseMimeType"),
    ],
)
def test_unknown_config_fields_get_a_did_you_mean(key: str, suggested: str) -> None:
    problem = only(sdk({key: 1}), code="unknown_field")
    assert problem.path == f"config.{key}"
    assert problem.suggestion is not None
    assert problem.suggestion.split(" ")[0] == suggested
    assert f"Did you mean {problem.suggestion}?" in problem.explain("en")
    assert f"你是不是想写 {problem.suggestion}" in problem.explain("zh")


def test_the_suggestion_gives_both_spellings() -> None:
    problem = only(sdk({"max_tokens": 10}), code="unknown_field")
    assert problem.suggestion == "maxOutputTokens (snake_case: max_output_tokens)"


def test_a_field_with_no_near_name_gets_no_suggestion() -> None:
    assert only(sdk({"zzqqxx": 1}), code="unknown_field").suggestion is None


def test_every_field_of_the_sdk_config_is_accepted_in_both_spellings() -> None:
    for name, field in types.GenerateContentConfig.model_fields.items():
        for key in {name, field.alias or name}:
            assert not [p for p in sdk({key: None}) if p.code == "unknown_field"], key


def test_nested_objects_are_checked_with_their_own_fields() -> None:
    problem = only(sdk({"thinkingConfig": {"thinking_budgett": 0}}), code="unknown_field")
    assert problem.path == "config.thinkingConfig.thinking_budgett"
    assert problem.suggestion == "thinkingBudget (snake_case: thinking_budget)"


def test_generation_config_nested_in_config_is_explained() -> None:
    problem = only(sdk({"generation_config": {"temperature": 1}}), code="unknown_field")
    assert "directly in config" in str(problem.suggestion)


def test_unknown_call_arguments_are_reported() -> None:
    problem = only(validate({"model": FLASH, "contents": "hi", "confg": {}}), code="unknown_field")
    assert problem.path == "confg"
    assert problem.suggestion == "config"


def test_a_config_of_the_wrong_type_is_an_error() -> None:
    assert only(sdk("temperature=1"), code="wrong_type").path == "config"


# --- REST bodies ---------------------------------------------------------------------------


def test_rest_body_fields_and_generation_config_are_checked() -> None:
    body = {
        "contents": [{"parts": [{"text": "hi"}]}],
        "generationConfig": {"temperature": 9, "maxTokens": 5},
        "safetySetting": [],
    }
    problems = validate(body)
    assert only(problems, code="out_of_range").path == "generationConfig.temperature"
    unknown = {p.path: p.suggestion for p in problems if p.code == "unknown_field"}
    assert unknown == {
        "generationConfig.maxTokens": "maxOutputTokens (snake_case: max_output_tokens)",
        "safetySetting": "safetySettings (snake_case: safety_settings)",
    }


def test_a_rest_body_without_a_model_is_fine_its_model_is_in_the_url() -> None:
    assert validate({"contents": "hi", "generation_config": {"top_k": 3}}) == []


def test_mixing_sdk_config_and_rest_fields_is_an_error() -> None:
    problems = validate({"contents": "hi", "config": {}, "generationConfig": {}})
    assert only(problems, code="mixed_shapes").path == "config"


# --- safety settings -----------------------------------------------------------------------


def safety(*settings: Any) -> list[Problem]:
    return sdk({"safetySettings": list(settings)})


def test_unknown_category_and_threshold_get_suggestions() -> None:
    problems = safety({"category": "HARM_CATEGORY_HARRASMENT", "threshold": "BLOCK_MEDIUM"})
    cat = only(problems, path="config.safetySettings[0].category")
    thr = only(problems, path="config.safetySettings[0].threshold")
    assert (cat.code, cat.suggestion) == ("bad_enum", "HARM_CATEGORY_HARASSMENT")
    assert (thr.code, thr.suggestion) == ("bad_enum", "BLOCK_MEDIUM_AND_ABOVE")
    assert thr.allowed is not None
    assert "BLOCK_NONE" in thr.allowed


def test_a_category_without_its_prefix_is_suggested_with_it() -> None:
    problem = only(safety({"category": "dangerous_content", "threshold": "OFF"}), code="bad_enum")
    assert problem.suggestion == "HARM_CATEGORY_DANGEROUS_CONTENT"


def test_missing_category_or_threshold_is_an_error() -> None:
    problems = safety({"threshold": "OFF"}, {"category": "HARM_CATEGORY_HATE_SPEECH"})
    assert {p.path for p in errors(problems)} == {
        "config.safetySettings[0].category",
        "config.safetySettings[1].threshold",
    }


def test_sdk_objects_with_bad_enum_values_are_caught() -> None:
    # The SDK only warns about an unknown enum value and sends it anyway.
    with pytest.warns(UserWarning, match="not a valid HarmCategory"):
        setting = types.SafetySetting.model_validate(
            {"category": "HARM_CATEGORY_VIOLENCE", "threshold": "BLOCK_NONE"}
        )
    problem = only(sdk(types.GenerateContentConfig(safety_settings=[setting])), code="bad_enum")
    assert problem.path == "config.safety_settings[0].category"


def test_lowercase_enum_names_pass_through_the_sdk_but_not_in_a_rest_body() -> None:
    setting = {"category": "harm_category_harassment", "threshold": "block_none"}
    assert safety(setting) == []
    rest = validate({"contents": "hi", "safetySettings": [setting]})
    assert {p.suggestion for p in rest} == {"HARM_CATEGORY_HARASSMENT", "BLOCK_NONE"}


def test_vertex_only_categories_and_methods_are_warnings() -> None:
    problems = safety(
        {"category": "HARM_CATEGORY_IMAGE_HATE", "threshold": "OFF", "method": "SEVERITY"}
    )
    assert errors(problems) == []
    assert {p.code for p in problems} == {"unsupported_value", "unsupported_field"}


def test_placeholder_enum_values_are_warnings() -> None:
    problem = only(
        safety({"category": "HARM_CATEGORY_UNSPECIFIED", "threshold": "OFF"}),
        code="placeholder_value",
    )
    assert problem.severity == "warning"


def test_safety_settings_must_be_a_list() -> None:
    assert only(safety_dict := sdk({"safetySettings": {"category": "x"}}), code="wrong_type")
    assert safety_dict[0].path == "config.safetySettings"


# --- contents ------------------------------------------------------------------------------


@pytest.mark.parametrize("contents", [None, "", []])
def test_empty_contents_is_an_error(contents: Any) -> None:
    problem = only(sdk(contents=contents), code="empty_contents")
    assert problem.path == "contents"


def test_empty_parts_and_empty_text_are_errors() -> None:
    problems = sdk(
        contents=[
            {"role": "user", "parts": []},
            {"role": "user", "parts": [{"text": ""}]},
            types.Content(role="user", parts=[types.Part(text="")]),
            "",
        ]
    )
    assert {(p.code, p.path) for p in problems} == {
        ("empty_parts", "contents[0].parts"),
        ("empty_text", "contents[1].parts[0]"),
        ("empty_text", "contents[2].parts[0]"),
        ("empty_text", "contents[3]"),
    }


@pytest.mark.parametrize(
    ("role", "suggestion", "severity"),
    [
        ("assistant", "model", "error"),
        ("usr", "user", "error"),
        ("function", "user", "warning"),
    ],
)
def test_roles_other_than_user_and_model(role: str, suggestion: str, severity: str) -> None:
    problem = only(sdk(contents=[{"role": role, "parts": [{"text": "hi"}]}]), code="invalid_role")
    assert (problem.suggestion, problem.severity) == (suggestion, severity)
    assert problem.allowed == "user, model"


def test_a_system_role_points_to_system_instruction() -> None:
    problem = only(
        sdk(contents=[{"role": "system", "parts": [{"text": "x"}]}]), code="invalid_role"
    )
    assert "systemInstruction" in str(problem.suggestion)


def test_misspelled_keys_inside_contents_are_reported() -> None:
    problem = only(sdk(contents=[{"role": "user", "part": [{"text": "x"}]}]), code="unknown_field")
    assert problem.suggestion == "parts"


# --- input size ----------------------------------------------------------------------------


def test_input_over_the_models_limit_is_request_too_large() -> None:
    model = {"name": "models/small", "inputTokenLimit": 10, "outputTokenLimit": 10}
    problems = validate({"model": "small", "contents": "x" * 41}, model_info=[model])
    problem = only(problems, code="input_too_large")
    assert problem.category is Category.REQUEST_TOO_LARGE
    assert "about 11 input tokens" in problem.message
    assert problem.allowed == "≤ 10 tokens"
    assert validate({"model": "small", "contents": "x" * 40}, model_info=[model]) == []


def test_the_system_instruction_counts_toward_the_input() -> None:
    model = {"name": "models/small", "inputTokenLimit": 10}
    request = {"model": "small", "contents": "x" * 20, "config": {"systemInstruction": "y" * 24}}
    assert only(validate(request, model_info=[model]), code="input_too_large")


def test_the_shipped_table_supplies_limits_when_no_list_is_given() -> None:
    huge = "word " * 1_100_000  # ~1.4M tokens against a 1,048,576 limit
    assert only(sdk(contents=huge), code="input_too_large").path == "contents"


# --- check_request, the Guard's seam -------------------------------------------------------


def test_check_request_is_validate_in_the_call_shape() -> None:
    problems = check_request(FLASH, "hi", {"max_tokens": 5})
    assert [p.code for p in problems] == ["unknown_field"]
    assert check_request(FLASH, "hi", types.GenerateContentConfig(temperature=0.2)) == []


def test_validate_rejects_a_request_that_is_not_a_mapping() -> None:
    with pytest.raises(TypeError, match="takes a mapping"):
        validate("gemini-2.5-flash")  # type: ignore[arg-type]
