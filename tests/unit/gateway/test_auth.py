"""Gateway tokens: read from the environment or a hash, matched in constant time,
refused in Gemini's own error format."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from gemini_guard.config import GatewaySection, GatewayTokenSection
from gemini_guard.diagnosis import diagnose
from gemini_guard.errors import ConfigError
from gemini_guard.gateway.auth import (
    TokenTable,
    missing_token,
    model_not_allowed,
    presented_token,
    unknown_token,
)
from gemini_guard.secrets import scrub

TEAM_A = "gg-team-a-3f9c1e7d"
TEAM_B = "gg-team-b-81aa02c4"


def _table() -> TokenTable:
    section = GatewaySection(
        tokens=(
            GatewayTokenSection(name="team-a", token_env="TEAM_A_TOKEN", rpm=30),
            GatewayTokenSection(
                name="team-b",
                sha256=hashlib.sha256(TEAM_B.encode()).hexdigest(),
                models=("gemini-2.5-flash",),
            ),
        )
    )
    return TokenTable.from_section(section, environ={"TEAM_A_TOKEN": TEAM_A})


def test_tokens_from_the_environment_and_from_a_hash_both_authenticate() -> None:
    table = _table()
    a = table.authenticate(TEAM_A)
    b = table.authenticate(TEAM_B)
    assert a is not None
    assert a.name == "team-a"
    assert a.rpm == 30
    assert a.models is None
    assert b is not None
    assert b.name == "team-b"


@pytest.mark.parametrize("token", [None, "", "gg-team-a", TEAM_A + "x", TEAM_A.upper()])
def test_anything_else_is_refused(token: str | None) -> None:
    assert _table().authenticate(token) is None


def test_a_missing_variable_is_named_and_no_token_is_shown() -> None:
    section = GatewaySection(tokens=(GatewayTokenSection(name="ci", token_env="CI_TOKEN"),))
    with pytest.raises(ConfigError, match=r"gateway\.tokens\[0\] \(ci\).*CI_TOKEN"):
        TokenTable.from_section(section, environ={})


def test_the_same_token_twice_is_a_configuration_error() -> None:
    digest = hashlib.sha256(TEAM_A.encode()).hexdigest()
    section = GatewaySection(
        tokens=(
            GatewayTokenSection(name="a", token_env="TEAM_A_TOKEN"),
            GatewayTokenSection(name="b", sha256=digest),
        )
    )
    with pytest.raises(ConfigError, match="same token"):
        TokenTable.from_section(section, environ={"TEAM_A_TOKEN": TEAM_A})


def test_a_token_read_from_the_environment_is_scrubbed_from_text() -> None:
    _table()
    assert TEAM_A not in scrub(f"upstream said: bad key {TEAM_A}")


def test_the_section_takes_exactly_one_source_and_never_a_literal_token() -> None:
    with pytest.raises(ValueError, match="exactly one of token_env"):
        GatewayTokenSection(name="x")
    with pytest.raises(ValueError, match="exactly one of token_env"):
        GatewayTokenSection(name="x", token_env="A", sha256="0" * 64)
    with pytest.raises(ValueError, match="never put a gateway token"):
        GatewayTokenSection.model_validate({"name": "x", "token": TEAM_A})
    with pytest.raises(ValueError, match="unique"):
        GatewaySection(
            tokens=(
                GatewayTokenSection(name="x", token_env="A"),
                GatewayTokenSection(name="x", token_env="B"),
            )
        )


@pytest.mark.parametrize(
    ("headers", "query", "expected"),
    [
        ({"x-goog-api-key": TEAM_A}, "", TEAM_A),  # google-genai, @google/genai
        ({"Authorization": f"Bearer {TEAM_A}"}, "", TEAM_A),  # the OpenAI SDK
        ({"authorization": f"bearer  {TEAM_A} "}, "", TEAM_A),
        ({}, f"alt=sse&key={TEAM_A}", TEAM_A),  # REST users
        ({"X-Goog-Api-Key": TEAM_A, "Authorization": f"Bearer {TEAM_B}"}, "", TEAM_A),
        ({"Authorization": f"Basic {TEAM_A}"}, "", None),
        ({"Authorization": "Bearer "}, "key=", None),
        ({}, "alt=sse", None),
    ],
)
def test_the_token_is_read_where_each_sdk_sends_it(
    headers: dict[str, str], query: str, expected: str | None
) -> None:
    assert presented_token(httpx.Headers(headers), query) == expected


def test_refusals_are_gemini_errors_that_say_they_came_from_the_gateway() -> None:
    caller = _table().authenticate(TEAM_B)
    assert caller is not None
    assert caller.may_use("models/gemini-2.5-flash")
    assert not caller.may_use("gemini-2.5-pro")
    for refusal, code in (
        (missing_token(), 401),
        (unknown_token(), 403),
        (model_not_allowed(caller, "gemini-2.5-pro"), 403),
    ):
        assert refusal.status == code
        error = refusal.body["error"]
        assert error["code"] == code
        assert error["message"].startswith("gemini-guard gateway:")
        diagnosis = diagnose(httpx.Response(code, json=refusal.body))
        assert diagnosis.http_status == code
        assert not diagnosis.retryable  # retrying a refused credential cannot help
    message = model_not_allowed(caller, "gemini-2.5-pro").body["error"]["message"]
    assert "gemini-2.5-flash" in message
