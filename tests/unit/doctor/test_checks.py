"""The doctor's checks one by one, on real sockets, files and servers on loopback."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gemini_guard.clock import FakeClock
from gemini_guard.diagnosis import Category, Diagnosis, QuotaViolation
from gemini_guard.doctor import (
    CheckResult,
    KeyChoice,
    Text,
    check_api_key,
    check_endpoint,
    check_sdk_version,
    check_status_page,
    check_store,
    check_tier,
    failures,
    find_api_key,
    redact_key,
)
from tests.support.binaries import require_binary

KEY = "AIza" + "k" * 31 + "XyZ1"
OTHER = "AIza" + "o" * 35


# --- API key -------------------------------------------------------------------------------


def test_google_api_key_takes_precedence_like_google_genai(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    choice = find_api_key({"GOOGLE_API_KEY": KEY, "GEMINI_API_KEY": OTHER})
    assert (choice.key, choice.source, choice.shadowed) == (KEY, "GOOGLE_API_KEY", "GEMINI_API_KEY")
    # The SDK itself agrees (google-genai 3.6.1, _api_client.get_env_api_key).
    from google.genai import _api_client

    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    monkeypatch.setenv("GEMINI_API_KEY", OTHER)
    assert _api_client.get_env_api_key() == KEY


def test_an_empty_variable_counts_as_unset() -> None:
    choice = find_api_key({"GOOGLE_API_KEY": "", "GEMINI_API_KEY": KEY})
    assert (choice.source, choice.shadowed) == ("GEMINI_API_KEY", None)


def test_the_same_key_in_both_variables_is_not_a_conflict() -> None:
    assert find_api_key({"GOOGLE_API_KEY": KEY, "GEMINI_API_KEY": KEY}).shadowed is None


def test_the_key_repr_never_shows_the_key() -> None:
    assert KEY not in repr(find_api_key({"GEMINI_API_KEY": KEY}))


@pytest.mark.parametrize(
    ("env", "status", "needle"),
    [
        ({}, "fail", "neither GEMINI_API_KEY nor GOOGLE_API_KEY"),
        ({"GEMINI_API_KEY": KEY}, "ok", "the format looks right"),
        ({"GEMINI_API_KEY": KEY + "\n"}, "fail", "newline or quotes"),
        ({"GEMINI_API_KEY": f'"{KEY}"'}, "fail", "newline or quotes"),
        ({"GEMINI_API_KEY": "sk-1234567890abcdef"}, "warn", "does not look like"),
        ({"GEMINI_API_KEY": KEY[:-1]}, "warn", "38 characters"),
        ({"GOOGLE_API_KEY": KEY, "GEMINI_API_KEY": OTHER}, "warn", "google-genai uses GOOGLE"),
    ],
)
def test_key_check(env: dict[str, str], status: str, needle: str) -> None:
    result = check_api_key(find_api_key(env))
    assert result.status == status
    assert needle in result.detail.en
    for text in (result.detail.en, result.detail.zh, str(result.fix)):
        assert KEY not in text
        assert OTHER not in text


def test_redact_key_shows_four_and_four() -> None:
    assert redact_key(KEY) == "AIza…XyZ1"
    assert redact_key("short") == "…(5 characters)"


# --- SDK version ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("installed", "legacy", "status"),
    [
        ("3.6.1", None, "ok"),
        ("3.0.0", None, "ok"),
        ("2.9.9", None, "fail"),
        ("1.20.0", None, "fail"),
        (None, None, "fail"),
        ("4.0.0", None, "warn"),
        ("3.6.1", "0.8.5", "warn"),
        ("3.1.0rc1", None, "ok"),
    ],
)
def test_sdk_version(installed: str | None, legacy: str | None, status: str) -> None:
    assert check_sdk_version(installed, legacy=legacy, probe=False).status == status


def test_the_installed_sdk_is_read_from_the_environment() -> None:
    assert "google-genai 3.6.1" in check_sdk_version().detail.en


# --- endpoint ------------------------------------------------------------------------------


@pytest.fixture
def refused_port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def test_a_non_http_url_fails_before_any_network() -> None:
    result = check_endpoint("ftp://example.invalid", timeout=1, clock=FakeClock())
    assert result.status == "fail"
    assert "not an http(s) URL" in result.detail.en


def test_a_refused_port_fails_at_tcp(refused_port: int) -> None:
    result = check_endpoint(f"http://127.0.0.1:{refused_port}", timeout=1, clock=FakeClock())
    assert result.status == "fail"
    assert result.detail.en.startswith("DNS 127.0.0.1 → 127.0.0.1; TCP failed")


def test_credentials_in_the_url_are_never_shown(refused_port: int) -> None:
    url = f"http://user:s3cret@127.0.0.1:{refused_port}/?key={KEY}"
    result = check_endpoint(url, timeout=1, clock=FakeClock())
    assert "s3cret" not in result.detail.en
    assert KEY not in result.detail.en


@pytest.fixture
def self_signed_tls_server(tmp_path: Path) -> Iterator[int]:
    """A TLS server on loopback whose certificate no CA vouches for (like a MITM proxy)."""
    openssl = require_binary("openssl", why="to make a self-signed certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(5)

    def serve_once() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        try:
            with context.wrap_socket(conn, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            pass  # the client refuses the certificate: that is the point

    thread = threading.Thread(target=serve_once, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(timeout=5)


def test_an_untrusted_certificate_fails_at_tls(self_signed_tls_server: int) -> None:
    url = f"https://127.0.0.1:{self_signed_tls_server}"
    result = check_endpoint(url, timeout=5, clock=FakeClock())
    assert result.status == "fail"
    assert "TLS failed" in result.detail.en
    assert "CERTIFICATE_VERIFY_FAILED" in result.detail.en
    assert result.fix is not None
    assert "SSL_CERT_FILE" in result.fix.en


# --- store ---------------------------------------------------------------------------------


def test_no_store_is_skipped_and_memory_is_ok() -> None:
    assert check_store(None, timeout=1).status == "skip"
    assert check_store("memory://", timeout=1).status == "ok"


def test_sqlite_store_writable_new_and_missing_directory(tmp_path: Path) -> None:
    existing = tmp_path / "state.db"
    existing.touch()
    assert check_store(f"sqlite:///{existing}", timeout=1).detail.en.endswith("writable")
    new = check_store(f"sqlite:///{tmp_path / 'new.db'}", timeout=1)
    assert (new.status, "will be created" in new.detail.en) == ("ok", True)
    assert not (tmp_path / "new.db").exists()  # the doctor creates nothing
    missing = check_store(f"sqlite:///{tmp_path / 'nope' / 'state.db'}", timeout=1)
    assert missing.status == "fail"


def test_a_locked_sqlite_store_fails(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "state.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = check_store(f"sqlite:///{path}", timeout=0.05)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.status == "fail"
    assert "locked" in result.detail.en


@pytest.mark.parametrize("url", ["sqlite:///", "postgres://db/x", "state.db"])
def test_bad_store_urls_fail_with_the_accepted_forms(url: str) -> None:
    result = check_store(url, timeout=1)
    assert result.status == "fail"
    assert result.fix is not None


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hunter2@127.0.0.1:6379/0?on_outage=later",
        "redis://127.0.0.1:6379/0?retry_after=soon",
        "sqlite:///state.db?on_corrupt=maybe",
        "sqlite:///state.db?mode=ro",
    ],
)
def test_a_bad_store_option_fails_with_the_message_the_guard_gives(url: str) -> None:
    from gemini_guard.errors import ConfigError
    from gemini_guard.policies.breaker_stores import open_breaker_store

    with pytest.raises(ConfigError) as refused:
        open_breaker_store(url)  # what Guard(store=url) opens first
    result = check_store(url, timeout=1)
    assert result.status == "fail"
    assert result.detail.en == str(refused.value)
    assert "hunter2" not in result.detail.en
    assert result.fix is not None


def test_redis_that_refuses_fails_and_hides_the_password(refused_port: int) -> None:
    result = check_store(f"redis://:hunter2@127.0.0.1:{refused_port}/0", timeout=1)
    assert result.status == "fail"
    assert "PING failed" in result.detail.en
    assert "hunter2" not in result.detail.en


@pytest.mark.redis
def test_a_live_redis_answers_ping(tmp_path: Path) -> None:
    server = require_binary("redis-server", why="to PING a real Redis")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    try:
        import redis

        probe = redis.Redis(port=port, socket_connect_timeout=0.2)
        for _ in range(100):
            try:
                probe.ping()
                break
            except redis.ConnectionError:
                threading.Event().wait(0.05)  # waiting for a child process to listen
        probe.close()
        assert check_store(f"redis://127.0.0.1:{port}/0", timeout=1).status == "ok"
    finally:
        process.terminate()
        process.wait(timeout=5)


# --- status page ---------------------------------------------------------------------------


def test_an_unreachable_status_page_is_only_a_warning(refused_port: int) -> None:
    result = check_status_page(f"http://127.0.0.1:{refused_port}/status", timeout=1)
    assert result.status == "warn"
    assert "may be offline" in result.detail.en


def test_a_reachable_status_page_is_ok() -> None:
    from gemini_guard.emulator import serve

    with serve("healthy") as server:
        ok = check_status_page(server.base_url + "/_emulator/stats", timeout=2)
        missing = check_status_page(server.base_url + "/no-such-page", timeout=2)
    assert ok.status == "ok"
    assert missing.status == "warn"
    assert "HTTP 404" in missing.detail.en


# --- tier ----------------------------------------------------------------------------------


def quota_diagnosis(tier: str) -> Diagnosis:
    suffix = "FreeTier" if tier == "free" else "PaidTier"
    return Diagnosis(
        http_status=429,
        grpc_status="RESOURCE_EXHAUSTED",
        reason=None,
        message="quota",
        category=Category.RATE_LIMITED,
        retryable=True,
        quota=QuotaViolation(
            scope="minute",
            unit="requests",
            tier=tier,  # type: ignore[arg-type]
            limit=5,
            model="gemini-2.5-pro",
            quota_id=f"GenerateRequestsPerMinutePerProjectPerModel-{suffix}",
            metric=None,
        ),
    )


@pytest.mark.parametrize(
    ("seen", "configured", "status"),
    [
        ([], None, "skip"),
        ([], "free", "skip"),
        (["free"], None, "ok"),
        (["free"], "free", "ok"),
        (["free"], "tier1", "warn"),
        (["paid"], "free", "warn"),
        (["paid"], "tier2", "ok"),
        (["free"], "auto", "ok"),  # "auto" learns the tier: it is no claim to contradict
        (["paid"], "auto", "ok"),
    ],
)
def test_tier_guess(seen: list[str], configured: str | None, status: str) -> None:
    result = check_tier([quota_diagnosis(t) for t in seen], configured)
    assert result.status == status
    if seen:
        assert "PerModel-" in result.detail.en


# --- configuration and totals ----------------------------------------------------------------


def test_failures_counts_only_failed_checks() -> None:
    def result(status: str) -> CheckResult:
        return CheckResult("x", status, Text("x", "x"), Text("x", "x"))  # type: ignore[arg-type]

    assert (
        failures([result("ok"), result("fail"), result("warn"), result("skip"), result("fail")])
        == 2
    )


def test_a_key_choice_without_key_is_a_failure() -> None:
    assert check_api_key(KeyChoice(None, None)).status == "fail"


def test_a_configured_key_variable_is_the_only_one_read() -> None:
    env = {"GOOGLE_API_KEY": OTHER, "MY_PROJECT_KEY": KEY}
    choice = find_api_key(env, key_env="MY_PROJECT_KEY")
    assert (choice.key, choice.source, choice.shadowed) == (KEY, "MY_PROJECT_KEY", None)
    missing = check_api_key(find_api_key({"GEMINI_API_KEY": KEY}, key_env="MY_PROJECT_KEY"))
    assert missing.status == "fail"
    assert "MY_PROJECT_KEY (the configuration's api_key_env) is not set" in missing.detail.en
    assert missing.fix is not None
    assert "export MY_PROJECT_KEY=" in missing.fix.en


# --- what a new user saw -------------------------------------------------------------------


def test_a_short_key_shows_its_length_once() -> None:
    result = check_api_key(find_api_key({"GEMINI_API_KEY": "abcdefg"}))
    assert "(…(7 characters))" in result.detail.en
    assert result.detail.en.count("7 characters") == 1
    assert result.detail.zh.count("7 characters") == 1


@pytest.mark.parametrize("url", ["sqlite:///state.db", "sqlite:////var/tmp/gg/state.db"])
def test_a_sqlite_url_is_shown_with_all_its_slashes(url: str, tmp_path: Path) -> None:
    assert check_store(url, timeout=1).detail.en.startswith(url)


def test_a_web_server_that_is_not_the_gemini_api_fails(tmp_path: Path) -> None:
    import http.server

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = check_endpoint(url, timeout=5, clock=FakeClock())
    finally:
        server.shutdown()
        server.server_close()
    assert result.status == "fail"
    assert "HTTP 404 for /v1beta/models" in result.detail.en
    assert "not as the Gemini API does" in result.detail.en
    assert result.fix is not None
