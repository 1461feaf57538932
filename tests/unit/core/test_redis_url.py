"""One parser for the options every Redis-backed store reads from its URL."""

from __future__ import annotations

import pytest

from gemini_guard.errors import ConfigError
from gemini_guard.redis_url import public_redis_url, split_redis_url


def test_our_options_are_taken_off_and_redis_py_keeps_its_own() -> None:
    rest, ours = split_redis_url(
        "redis://u:secret@h:6380/2?on_outage=fail&prefix=app&retry_after=5"
        "&socket_timeout=0.5&health_check_interval=10"
    )
    assert ours == {"on_outage": "fail", "prefix": "app", "retry_after": 5.0, "socket_timeout": 0.5}
    assert rest == "redis://u:secret@h:6380/2?health_check_interval=10"


def test_a_duration_that_is_not_a_number_is_named_in_the_error() -> None:
    with pytest.raises(ConfigError, match=r"retry_after='soon' must be a number of seconds"):
        split_redis_url("redis://h:6379/0?retry_after=soon")


def test_the_public_url_carries_no_credentials_and_no_options() -> None:
    assert public_redis_url("redis://u:secret@h:6380/2?prefix=x") == "redis://h:6380/2"
    assert "secret" not in public_redis_url("rediss://:secret@h/0")
