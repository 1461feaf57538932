"""The model rule (exists, did-you-mean, retired names) and the cached models list."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from google.genai import types

from gemini_guard.clock import FakeClock
from gemini_guard.diagnosis import Category
from gemini_guard.validation import (
    ModelCatalog,
    ModelInfo,
    Problem,
    check_request,
    retired_model,
    validate,
)

LISTED = [
    {
        "name": "models/gemini-2.5-flash",
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    },
    {"name": "models/gemini-2.5-pro", "supportedGenerationMethods": ["generateContent"]},
    {"name": "models/gemini-embedding-001", "supportedGenerationMethods": ["embedContent"]},
]


def model_problems(model: Any, source: Any = None) -> list[Problem]:
    problems = validate({"model": model, "contents": "hi"}, model_info=source)
    return [p for p in problems if p.path == "model"]


def test_a_listed_model_passes_with_or_without_the_models_prefix() -> None:
    assert model_problems("gemini-2.5-flash", LISTED) == []
    assert model_problems("models/gemini-2.5-pro", LISTED) == []


def test_an_unlisted_model_is_not_found_with_a_did_you_mean() -> None:
    (problem,) = model_problems("gemini-2.5-flsh", LISTED)
    assert problem.code == "unknown_model"
    assert problem.category is Category.NOT_FOUND
    assert problem.severity == "error"
    assert problem.suggestion == "gemini-2.5-flash"


def test_did_you_mean_never_suggests_a_model_that_cannot_generate() -> None:
    (problem,) = model_problems("gemini-embedding-01", LISTED)
    assert problem.suggestion != "gemini-embedding-001"


def test_a_listed_model_that_cannot_generate_is_reported() -> None:
    (problem,) = model_problems("gemini-embedding-001", LISTED)
    assert problem.code == "not_generative"
    assert "embedContent" in problem.message


@pytest.mark.parametrize(
    ("name", "successor"),
    [
        ("gemini-pro", "gemini-2.5-flash"),
        ("gemini-1.0-pro", "gemini-2.5-flash"),
        ("models/gemini-1.5-pro-002", "gemini-2.5-pro"),
        ("gemini-1.5-flash", "gemini-2.5-flash"),
        ("gemini-1.5-flash-8b", "gemini-2.5-flash-lite"),
    ],
)
def test_retired_names_are_not_found_and_name_their_successor(name: str, successor: str) -> None:
    for source in (None, LISTED):
        (problem,) = model_problems(name, source)
        assert problem.code == "retired_model"
        assert problem.category is Category.NOT_FOUND
        assert problem.suggestion == successor
        assert "retired" in problem.message
        assert "下线" in problem.message_zh


def test_a_retired_name_the_list_still_serves_is_accepted() -> None:
    assert model_problems("gemini-1.5-flash", [{"name": "models/gemini-1.5-flash"}]) == []


def test_retired_model_lookup() -> None:
    assert retired_model("gemini-2.5-flash") is None
    row = retired_model("GEMINI-1.0-PRO-001")
    assert row is not None
    assert row.successor == "gemini-2.5-flash"


def test_without_a_list_a_near_miss_of_a_shipped_name_is_a_warning() -> None:
    (problem,) = model_problems("gemini-2.5-flsh")
    assert (problem.severity, problem.suggestion) == ("warning", "gemini-2.5-flash")
    assert model_problems("some-brand-new-model") == []


@pytest.mark.parametrize("model", [None, "", "  ", 42])
def test_a_missing_model_is_an_error(model: Any) -> None:
    (problem,) = model_problems(model)
    assert problem.code == "missing_model"


def test_tuned_models_are_not_checked_against_the_list() -> None:
    assert model_problems("tunedModels/my-model-123", LISTED) == []


def test_model_info_accepts_one_sdk_model_as_a_models_get_answer() -> None:
    model = types.Model(name="models/custom", input_token_limit=5, output_token_limit=5)
    problems = validate(
        {"model": "custom", "contents": "x" * 100, "config": {"maxOutputTokens": 6}},
        model_info=model,
    )
    assert {p.code for p in problems} == {"input_too_large", "out_of_range"}


def test_model_info_from_sdk_and_rest_shapes_agree() -> None:
    rest = ModelInfo.from_api(LISTED[0])
    sdk = ModelInfo.from_api(
        types.Model(
            name="models/gemini-2.5-flash",
            input_token_limit=1048576,
            output_token_limit=65536,
            supported_actions=["generateContent", "countTokens"],
        )
    )
    assert rest == sdk
    assert rest.name == "gemini-2.5-flash"
    assert rest.can_generate


def test_model_info_needs_a_name() -> None:
    with pytest.raises(ValueError, match="non-empty 'name'"):
        ModelInfo.from_api({"displayName": "x"})


def test_listed_models_without_limits_take_them_from_the_shipped_table() -> None:
    problems = validate(
        {"model": "gemini-2.5-pro", "contents": "hi", "config": {"maxOutputTokens": 70000}},
        model_info=LISTED,
    )
    assert [p.allowed for p in problems] == ["a whole number 1–65536"]


# --- ModelCatalog --------------------------------------------------------------------------


class CountingList:
    """A models.list stand-in that can be made to fail, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail = False
        self.models: list[Any] = list(LISTED)

    def __call__(self) -> list[Any]:
        self.calls += 1
        if self.fail:
            raise ConnectionError("network down")
        return self.models


def test_the_catalog_caches_the_list_for_its_ttl() -> None:
    clock, fetch = FakeClock(), CountingList()
    catalog = ModelCatalog(fetch, clock=clock, ttl=datetime.timedelta(minutes=10))
    assert catalog.get("gemini-2.5-flash") is not None
    clock.advance(599)
    assert catalog.get("models/gemini-2.5-pro") is not None
    assert fetch.calls == 1
    fetch.models = [{"name": "models/gemini-3-pro"}]
    clock.advance(1)
    assert catalog.get("gemini-2.5-pro") is None
    assert catalog.get("gemini-3-pro") is not None
    assert fetch.calls == 2


def test_a_failed_refresh_keeps_the_last_list_and_retries_later() -> None:
    clock, fetch = FakeClock(), CountingList()
    catalog = ModelCatalog(fetch, clock=clock, ttl=60, retry_after_error=30)
    assert catalog.models() is not None
    fetch.fail = True
    clock.advance(60)
    assert catalog.get("gemini-2.5-flash") is not None  # stale but served
    assert isinstance(catalog.last_error, ConnectionError)
    clock.advance(29)
    catalog.models()
    assert fetch.calls == 2  # no retry before retry_after_error
    fetch.fail = False
    clock.advance(1)
    catalog.models()
    assert fetch.calls == 3
    assert catalog.last_error is None


def test_with_no_list_at_all_the_validator_falls_back_to_the_shipped_table() -> None:
    fetch = CountingList()
    fetch.fail = True
    catalog = ModelCatalog(fetch, clock=FakeClock())
    assert catalog.models() is None
    # No list: an unknown name is not an error, a retired one still is.
    assert check_request("brand-new-model", "hi", None, catalog=catalog) == []
    assert [p.code for p in check_request("gemini-pro", "hi", None, catalog=catalog)] == [
        "retired_model"
    ]


def test_invalidate_forces_a_refetch() -> None:
    clock, fetch = FakeClock(), CountingList()
    catalog = ModelCatalog(fetch, clock=clock)
    catalog.models()
    catalog.invalidate()
    catalog.models()
    assert fetch.calls == 2


def test_a_fixed_catalog_never_refetches() -> None:
    catalog = ModelCatalog.of(LISTED, clock=FakeClock())
    assert catalog.get("gemini-2.5-flash") is not None
    assert catalog.get("gemini-2.5-flash") is not None
    assert catalog.fetches == 1


def test_negative_ttl_is_refused() -> None:
    with pytest.raises(ValueError, match="ttl"):
        ModelCatalog(list, clock=FakeClock(), ttl=-1)


async def test_arefresh_fills_the_cache_without_blocking_and_respects_the_ttl() -> None:
    clock, calls = FakeClock(), []

    async def afetch() -> list[Any]:
        calls.append(clock.monotonic())
        return LISTED

    catalog = ModelCatalog(CountingList(), clock=clock, ttl=60, afetch=afetch)
    await catalog.arefresh()
    await catalog.arefresh()
    assert len(calls) == 1
    assert catalog.get("gemini-2.5-flash") is not None  # served from the cache, no sync fetch
    assert catalog.fetches == 1
    clock.advance(60)
    await catalog.arefresh()
    assert len(calls) == 2


async def test_arefresh_without_afetch_runs_the_sync_fetch_in_a_thread() -> None:
    fetch = CountingList()
    catalog = ModelCatalog(fetch, clock=FakeClock())
    await catalog.arefresh()
    assert fetch.calls == 1
    assert catalog.get("gemini-2.5-pro") is not None


async def test_a_failed_arefresh_keeps_the_last_list() -> None:
    clock, fetch = FakeClock(), CountingList()
    catalog = ModelCatalog(fetch, clock=clock, ttl=10, retry_after_error=5)
    await catalog.arefresh()
    fetch.fail = True
    clock.advance(10)
    await catalog.arefresh()
    assert isinstance(catalog.last_error, ConnectionError)
    assert catalog.get("gemini-2.5-flash") is not None
    assert fetch.calls == 2
