"""An upstream key that no HTTP header can carry is refused when the gateway is built,
with a message that says how to fix it and does not show the key."""

from __future__ import annotations

import pytest

from gemini_guard.config import GuardConfig
from gemini_guard.errors import ConfigError
from gemini_guard.gateway.build import build_gateway

PASTED = "AIzaSyPastedWithASmartQuote\u2019"


def _config() -> GuardConfig:
    return GuardConfig.model_validate(
        {
            "models": ["gemini-2.5-flash"],
            "base_url": "http://127.0.0.1:9",
            "projects": [{"name": "main", "api_key_env": "UPSTREAM_KEY_TEST"}],
            "telemetry": {"log": False},
            "gateway": {"tokens": [{"name": "app", "token_env": "UPSTREAM_TOKEN_TEST"}]},
        }
    )


def test_a_key_with_a_character_beyond_ascii_is_refused_at_build() -> None:
    environ = {"UPSTREAM_KEY_TEST": PASTED, "UPSTREAM_TOKEN_TEST": "gg-token"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environ.items():
            patch.setenv(name, value)
        with pytest.raises(ConfigError, match="not ASCII") as refused:
            build_gateway(_config(), environ=environ)
    assert PASTED not in str(refused.value)
    assert "AIzaSy" not in str(refused.value)
