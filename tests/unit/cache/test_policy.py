"""Which calls are cached: temperature 0 by default, or marked per call."""

from __future__ import annotations

import pytest
from google.genai import types

from gemini_guard.cache.policy import CACHE_LABEL, CallOptions, cache_options, decide, split_label
from gemini_guard.errors import ConfigError


def ttl_of(config: object, policy: str = "deterministic") -> float | None:
    config, label = split_label(config)
    return decide(config, label, policy=policy, default_ttl=60.0)  # type: ignore[arg-type]


def test_only_deterministic_calls_by_default() -> None:
    assert ttl_of({"temperature": 0}) == 60.0
    assert ttl_of(types.GenerateContentConfig(temperature=0.0)) == 60.0
    assert ttl_of({"temperature": 0.7}) is None
    assert ttl_of(None) is None  # the model's default temperature is not 0


def test_the_label_marks_a_call_and_is_removed() -> None:
    config, label = split_label({"temperature": 1, "labels": {CACHE_LABEL: "600", "team": "a"}})
    assert label == CallOptions(cacheable=True, ttl=600.0)
    assert config == {"temperature": 1, "labels": {"team": "a"}}
    obj, label = split_label(types.GenerateContentConfig(labels={CACHE_LABEL: "no"}, temperature=0))
    assert label.cacheable is False
    assert obj.labels is None
    assert ttl_of({"temperature": 0, "labels": {CACHE_LABEL: "no"}}) is None
    assert ttl_of({"temperature": 1.5, "labels": {CACHE_LABEL: "yes"}}) == 60.0


def test_a_bad_label_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="use 'yes', 'no' or a TTL"):
        split_label({"labels": {CACHE_LABEL: "sometimes"}})


def test_cache_options_scope_and_precedence() -> None:
    with cache_options(cacheable=True, ttl=5):
        assert ttl_of({"temperature": 1}) == 5
        assert ttl_of({"temperature": 1, "labels": {CACHE_LABEL: "no"}}) is None
    assert ttl_of({"temperature": 1}) is None
    with cache_options(cacheable=False):
        assert ttl_of({"temperature": 0}) is None


def test_policies() -> None:
    assert ttl_of({"temperature": 1}, "all") == 60.0
    assert ttl_of({"temperature": 0}, "marked") is None
    assert ttl_of({"temperature": 0, "labels": {CACHE_LABEL: "yes"}}, "off") is None
