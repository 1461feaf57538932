"""The one parser of store URLs: what each store reads, and the errors it gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from gemini_guard.errors import ConfigError
from gemini_guard.stores.url import (
    CONNECT_TIMEOUT,
    RETRY_AFTER,
    SOCKET_TIMEOUT,
    parse_store_url,
    shown_url,
    sqlite_file_of,
    with_options,
)


def test_a_redis_url_gives_our_options_typed_and_leaves_redis_py_its_own() -> None:
    url = parse_store_url(
        "redis://u:secret@h:6380/2?on_outage=fail&prefix=app&retry_after=5"
        "&socket_timeout=0.5&health_check_interval=10"
    )
    assert (url.kind, url.scheme, url.on_outage, url.prefix) == ("redis", "redis", "fail", "app")
    assert (url.retry_after, url.socket_timeout, url.connect_timeout) == (5.0, 0.5, CONNECT_TIMEOUT)
    assert url.client_url == "redis://u:secret@h:6380/2?health_check_interval=10"
    assert url.shown == "redis://h:6380/2"
    assert "secret" not in repr(url)


def test_defaults_when_the_url_says_nothing() -> None:
    url = parse_store_url("rediss://h/0")
    assert (url.kind, url.scheme, url.on_outage, url.prefix) == ("redis", "rediss", "degrade", "gg")
    assert (url.retry_after, url.socket_timeout) == (RETRY_AFTER, SOCKET_TIMEOUT)


def test_a_sqlite_url_names_its_file_and_on_corrupt() -> None:
    url = parse_store_url("sqlite:///~/state.db?on_corrupt=reset")
    assert url.path == Path("~/state.db").expanduser()
    assert url.on_corrupt == "reset"
    assert sqlite_file_of("sqlite:////var/tmp/s.db") == (Path("/var/tmp/s.db"), "fail")
    assert parse_store_url("memory://").kind == "memory"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("state.db", "store='state.db' is not a store URL; use one of memory://"),
        ("mysql://u:pw@db/x", "store='mysql://db/x': unknown scheme 'mysql'"),
        ("memory://here", "takes no path"),
        ("sqlite:///", "names no database file; use sqlite:///relative/path.db"),
        ("sqlite:///x.db?mode=ro", r"takes no options but \?on_corrupt=reset.*unknown: mode"),
        ("sqlite:///x.db?on_corrupt=maybe", "on_corrupt must be 'fail' or 'reset', not 'maybe'"),
        ("redis://h/0?on_outage=maybe", "on_outage='maybe': use 'degrade' or 'fail'"),
        ("redis://h/0?retry_after=soon", r"retry_after='soon' must be a number of seconds"),
        ("redis://h/0?socket_timeout=0", r"socket_timeout='0' must be .* \(e.g. socket_timeout"),
        ("redis://h/0?connect_timeout=inf", "connect_timeout='inf' must be"),
        ("redis://h/0?prefix=a{b}", "prefix='a{b}' must be non-empty and must not contain"),
        ("redis://h/0?on_corrupt=reset", "on_corrupt is an option of sqlite:// URLs"),
    ],
)
def test_a_bad_url_names_the_option_and_the_fix(url: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as caught:
        parse_store_url(url)
    assert "pw" not in str(caught.value)


def test_the_setting_is_named_in_the_error() -> None:
    with pytest.raises(ConfigError, match=r"cache='nowhere' is not a cache URL"):
        parse_store_url("nowhere", option="cache")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://u:secret@h:6380/2?prefix=x", "redis://h:6380/2"),
        ("rediss://:secret@h/0", "rediss://h/0"),
        ("unix:///run/redis.sock?db=0&password=secret", "unix:///run/redis.sock"),
        ("sqlite:///state.db?on_corrupt=reset", "sqlite:///state.db"),
        ("sqlite:////var/tmp/state.db", "sqlite:////var/tmp/state.db"),
        ("memory://", "memory://"),
    ],
)
def test_the_shown_url_carries_no_credentials_and_no_options(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def test_keyword_options_go_through_the_same_checks() -> None:
    url = parse_store_url(with_options("redis://h/0?prefix=x", prefix="y", retry_after=2.5))
    assert (url.prefix, url.retry_after) == ("y", 2.5)
    with pytest.raises(ConfigError, match="use 'degrade' or 'fail'"):
        parse_store_url(with_options("redis://h/0", on_outage="later"))
