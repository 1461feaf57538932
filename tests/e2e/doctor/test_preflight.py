"""A request the validator rejects is never sent, and the API (emulated) would have refused it.

Until the Guard's validation seam calls it, strict mode is what these tests spell out:
`check_request` first; on any error, raise `rejection(problems)` and send nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from google import genai
from google.genai import errors, types

from gemini_guard.clock import FakeClock
from gemini_guard.diagnosis import Category
from gemini_guard.emulator import EmulatorServer, serve
from gemini_guard.errors import RequestRejected
from gemini_guard.validation import (
    ModelCatalog,
    ModelSource,
    Problem,
    check_request,
    preflight,
    rejection,
)

KEY = "AIza" + "PreflightKey".ljust(35, "0")
FLASH = "gemini-2.5-flash"


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with serve({"keys": {KEY: {"project": "preflight"}}, "quotas": False}) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: EmulatorServer) -> Iterator[genai.Client]:
    with genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=server.base_url)) as sdk:
        yield sdk


def generate_strict(
    client: genai.Client, model: str, contents: Any, config: Any, catalog: ModelSource | None
) -> str:
    """validation="strict": check first, send only a request with no errors."""
    problems = check_request(model, contents, config, catalog=catalog)
    if any(p.is_error for p in problems):
        raise rejection(problems, model=model)
    return client.models.generate_content(model=model, contents=contents, config=config).text or ""


def generate_calls(server: EmulatorServer) -> int:
    """generateContent requests the emulator received (models.list is recorded as model "-")."""
    projects = server.emulator.stats()["projects"]
    return sum(
        counters["requests"]
        for models in projects.values()
        for model, counters in models.items()
        if model != "-"
    )


@pytest.mark.parametrize(
    ("model", "config", "category", "status"),
    [
        (FLASH, {"temperature": 2.5}, Category.BAD_REQUEST, 400),
        (FLASH, {"top_p": 1.5}, Category.BAD_REQUEST, 400),
        (FLASH, {"candidate_count": 9}, Category.BAD_REQUEST, 400),
        (FLASH, {"max_output_tokens": 70000}, Category.BAD_REQUEST, 400),
        (FLASH, {"max_output_tokens": 0}, Category.BAD_REQUEST, 400),
        ("gemini-1.5-pro", None, Category.NOT_FOUND, 404),
    ],
)
def test_rejected_locally_sends_nothing_and_the_api_would_have_refused_it(
    server: EmulatorServer,
    client: genai.Client,
    model: str,
    config: Any,
    category: Category,
    status: int,
) -> None:
    before = generate_calls(server)
    with pytest.raises(RequestRejected) as caught:
        generate_strict(client, model, "Say hi.", config, catalog=None)
    assert caught.value.diagnosis.category is category
    assert caught.value.diagnosis.http_status == status
    assert caught.value.attempts == ()
    assert generate_calls(server) == before  # nothing reached the API

    # Sent anyway, the same request costs a request and earns the same answer.
    with pytest.raises(errors.APIError) as refused:
        client.models.generate_content(model=model, contents="Say hi.", config=config)
    assert refused.value.code == status
    assert generate_calls(server) == before + 1


def test_a_valid_request_passes_the_check_and_is_sent(
    server: EmulatorServer, client: genai.Client
) -> None:
    before = generate_calls(server)
    config = {"temperature": 2.0, "candidate_count": 8, "max_output_tokens": 65536}
    assert generate_strict(client, FLASH, "Say hi.", config, catalog=None)
    assert generate_calls(server) == before + 1


def test_a_typo_in_the_model_is_caught_with_the_live_models_list(
    server: EmulatorServer, client: genai.Client
) -> None:
    before = generate_calls(server)
    catalog = ModelCatalog.from_client(client, clock=FakeClock(), ttl=600)
    with pytest.raises(RequestRejected, match=r"Did you mean gemini-2\.5-flash\?"):
        generate_strict(client, "gemini-2.5-flsh", "Say hi.", None, catalog=catalog)
    with pytest.raises(RequestRejected):
        generate_strict(client, "gemini-2.5-flsh", "Say hi again.", None, catalog=catalog)
    assert catalog.fetches == 1  # one models.list, cached
    assert generate_calls(server) == before


def test_a_misspelled_config_field_is_named_before_the_sdk_raises(
    server: EmulatorServer, client: genai.Client
) -> None:
    before = generate_calls(server)
    with pytest.raises(RequestRejected) as caught:
        generate_strict(client, FLASH, "Say hi.", {"max_tokens": 100}, catalog=None)
    assert "maxOutputTokens" in str(caught.value)
    assert generate_calls(server) == before


async def test_the_catalog_refreshes_through_the_async_sdk(server: EmulatorServer) -> None:
    client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=server.base_url))
    try:
        catalog = ModelCatalog.from_client(client, clock=FakeClock(), ttl=600)
        await catalog.arefresh()
    finally:
        await client.aio.aclose()
        client.close()
    assert catalog.last_error is None, repr(catalog.last_error)
    models = catalog.models()  # cached: no further request
    assert models is not None
    assert {"gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite"} <= set(models)
    assert catalog.fetches == 1
    assert models["gemini-2.5-flash"].output_token_limit == 65536


# --- through the Guard's validation= option ----------------------------------------------------


def test_the_guard_in_strict_mode_sends_nothing_for_a_bad_request(
    server: EmulatorServer, client: genai.Client
) -> None:
    from gemini_guard.guard import Guard

    guard = Guard(client=client, models=[FLASH], validation="strict", log=False)
    before = generate_calls(server)
    with pytest.raises(RequestRejected) as caught:
        guard.models.generate_content(model=FLASH, contents="hi", config={"candidate_count": 9})
    assert caught.value.diagnosis.http_status == 400
    assert generate_calls(server) == before
    reply = guard.models.generate_content(model=FLASH, contents="hi", config={"candidate_count": 1})
    assert reply.text
    assert generate_calls(server) == before + 1


def test_the_guard_in_warn_mode_reports_and_still_sends(
    server: EmulatorServer, client: genai.Client
) -> None:
    from gemini_guard.guard import Guard
    from gemini_guard.telemetry import Event, PreflightProblems

    events: list[Event] = []
    guard = Guard(
        client=client, models=[FLASH], validation="warn", hooks=[events.append], log=False
    )
    before = generate_calls(server)
    with pytest.raises(RequestRejected):  # the API's own 400, after one request
        guard.models.generate_content(model=FLASH, contents="hi", config={"candidate_count": 9})
    assert generate_calls(server) == before + 1
    reported = [e for e in events if isinstance(e, PreflightProblems)]
    assert len(reported) == 1
    assert reported[0].model == FLASH
    assert not reported[0].rejected
    assert "candidate_count" in reported[0].problems[0]


def test_a_custom_validator_replaces_the_checks(
    server: EmulatorServer, client: genai.Client
) -> None:
    from gemini_guard.guard import Guard

    seen: list[tuple[str, list[Problem]]] = []
    check = preflight("warn", on_problems=lambda model, problems: seen.append((model, problems)))
    assert check is not None
    guard = Guard(client=client, models=[FLASH], validation=check, log=False)
    with pytest.raises(RequestRejected):
        guard.models.generate_content(model=FLASH, contents="hi", config={"candidate_count": 9})
    assert [(m, [p.code for p in ps]) for m, ps in seen] == [(FLASH, ["out_of_range"])]
