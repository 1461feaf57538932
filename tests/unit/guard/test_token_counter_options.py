"""Choosing the token counter: `Guard(token_counter=...)` and `[quota] token_counter`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google import genai
from google.genai import types

from gemini_guard.config import load_config
from gemini_guard.errors import ConfigError
from gemini_guard.guard import Guard, guard_from_config
from gemini_guard.tokens.counter import (
    ApiTokenCounter,
    EstimateTokenCounter,
    FunctionTokenCounter,
)

KEY = "AIzaSyCOUNTEROPTIONS-0123456789abcdefgh"


@pytest.fixture
def client() -> Iterator[genai.Client]:
    client = genai.Client(api_key=KEY)
    yield client
    client.close()


def test_the_default_is_the_local_estimate(client: genai.Client) -> None:
    with Guard(client=client) as guard:
        assert isinstance(guard.token_counter, EstimateTokenCounter)


def test_api_counts_with_the_guards_client(client: genai.Client) -> None:
    with Guard(client=client, token_counter="api") as guard:
        counter = guard.token_counter
        assert isinstance(counter, ApiTokenCounter)
        assert counter.client is client
        assert (counter.max_entries, counter.timeout) == (4096, 5.0)
        assert KEY not in repr(counter)


def test_a_function_or_a_counter_object_is_taken(client: genai.Client) -> None:
    def fixed(model: str, contents: Any, config: Any) -> int:
        return 7

    with Guard(client=client, token_counter=fixed) as guard:
        assert isinstance(guard.token_counter, FunctionTokenCounter)
        assert guard.token_counter.count("m", "hello", None) == 7
    own = ApiTokenCounter(client, timeout=1.5)
    with Guard(client=client, token_counter=own) as guard:
        assert guard.token_counter is own


@pytest.mark.parametrize("wrong", ["apii", "API", "", 3, None])
def test_a_wrong_choice_is_a_config_error_naming_what_is_allowed(
    client: genai.Client, wrong: object
) -> None:
    with pytest.raises(ConfigError) as raised:
        Guard(client=client, token_counter=wrong)  # type: ignore[arg-type]
    message = str(raised.value)
    assert message.startswith(f"token_counter {wrong!r} is not one of: 'estimate', 'api', ")
    assert "a function (model, contents, config) -> int" in message


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"max_entries": 0}, "max_entries must be a positive integer, got 0"),
        ({"timeout": 0}, "timeout must be a positive number of seconds, got 0"),
        ({"timeout": "5"}, "timeout must be a positive number of seconds, got '5'"),
    ],
)
def test_api_counter_options_are_checked(
    client: genai.Client, options: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        ApiTokenCounter(client, **options)


def test_a_function_giving_no_count_falls_back_to_the_estimate() -> None:
    counter = FunctionTokenCounter(lambda model, contents, config: -1)
    assert counter.count("gemini-2.5-flash", "x" * 40, None) == 10


def test_the_configuration_chooses_the_counter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client: genai.Client
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config(env={}).quota.token_counter == "estimate"
    path = tmp_path / "gemini-guard.toml"
    path.write_text('[quota]\ntoken_counter = "api"\n', encoding="utf-8")
    config = load_config(path, env={})
    assert config.quota.token_counter == "api"
    with guard_from_config(config, client=client) as guard:
        assert isinstance(guard.token_counter, ApiTokenCounter)
    env = {"GEMINI_GUARD_QUOTA__TOKEN_COUNTER": "estimate"}
    with guard_from_config(load_config(path, env=env), client=client) as guard:
        assert isinstance(guard.token_counter, EstimateTokenCounter)


def test_a_wrong_configured_counter_names_field_value_choices_and_source(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gemini-guard.toml"
    path.write_text('[quota]\ntoken_counter = "tokenizer"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path, env={})
    assert str(raised.value) == (
        "invalid gemini-guard configuration: quota.token_counter (got 'tokenizer'): "
        f"Input should be 'estimate' or 'api' [{path}]"
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path, env={"GEMINI_GUARD_QUOTA__TOKEN_COUNTER": "count"})
    assert "quota.token_counter (got 'count')" in str(raised.value)
    assert "[environment variable GEMINI_GUARD_QUOTA__TOKEN_COUNTER]" in str(raised.value)


def test_system_instruction_and_tools_go_to_count_tokens_only_where_the_sdk_takes_them(
    client: genai.Client,
) -> None:
    tool = types.Tool(function_declarations=[types.FunctionDeclaration(name="f", description="d")])

    def python_tool() -> str:
        return "the SDK declares this one itself"

    config = {"system_instruction": "Be brief.", "tools": [tool, python_tool], "temperature": 0}
    # The Gemini Developer API: contents only (the SDK raises ValueError for the rest).
    gemini = ApiTokenCounter(client)._request(config)
    assert (gemini.system_instruction, gemini.tools) == (None, None)
    vertex_client = genai.Client(vertexai=True, api_key=KEY)
    try:
        vertex = ApiTokenCounter(vertex_client)._request(config)
    finally:
        vertex_client.close()
    assert vertex.system_instruction == "Be brief."
    assert vertex.tools == [tool]
    for request in (gemini, vertex):
        assert request.http_options is not None
        assert request.http_options.timeout == 5000
        assert request.http_options.retry_options == types.HttpRetryOptions(attempts=1)


def test_an_async_function_is_refused_at_once(client: genai.Client) -> None:
    async def counted(model: str, contents: Any, config: Any) -> int:
        return 1

    with pytest.raises(ConfigError, match="is an async function, which sync calls cannot"):
        Guard(client=client, token_counter=counted)  # type: ignore[arg-type]
