"""`gemini-guard diagnose` end to end: the installed console script in a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("gemini-guard")
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CJK = re.compile(r"[\u4e00-\u9fff]")

PER_MINUTE = json.loads((FIXTURES / "gemini-errors.json").read_text("utf-8"))["cases"][0]["body"]
SDK_LINE = "google.genai.errors.ClientError: 429 RESOURCE_EXHAUSTED. " + repr(PER_MINUTE)
TRACEBACK = f"""Traceback (most recent call last):
  File "app.py", line 9, in <module>
    client.models.generate_content(model="gemini-2.5-flash", contents="hi")
  File ".../google/genai/errors.py", line 159, in raise_error
    raise ClientError(status_code, response_json, response)
{SDK_LINE}
"""


def run(
    *args: str, stdin: str | None = None, lang: str = "C.UTF-8"
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LC_") and k != "LANG"}
    env["LANG"] = lang
    return subprocess.run(
        [str(SCRIPT), "diagnose", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_argument() -> None:
    result = run(SDK_LINE)
    assert result.returncode == 0, result.stderr
    assert "Per-minute quota exceeded" in result.stdout
    assert "rate_limited" in result.stdout
    assert "37 s" in result.stdout


def test_stdin_with_a_whole_traceback() -> None:
    result = run("-", stdin=TRACEBACK)
    assert result.returncode == 0, result.stderr
    assert "Per-minute quota exceeded" in result.stdout


def test_stdin_without_dash_when_piped() -> None:
    result = run(stdin=json.dumps(PER_MINUTE))
    assert result.returncode == 0, result.stderr
    assert "rate_limited" in result.stdout


def test_file(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(
        "2026-02-01 10:00:00 INFO starting\n"
        '2026-02-01 10:00:01 ERROR call failed: {"error": {"code": 503, "message": '
        '"The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}\n',
        "utf-8",
    )
    result = run(str(log))
    assert result.returncode == 0, result.stderr
    assert "overloaded" in result.stdout


def test_json_output_has_the_fields() -> None:
    result = run("--json", TRACEBACK)
    assert result.returncode == 0, result.stderr
    [data] = json.loads(result.stdout)
    assert data["count"] == 1
    assert data["category"] == "rate_limited"
    assert data["retryable"] is True
    assert data["retry_after"] == 37.0
    assert data["http_status"] == 429
    assert data["grpc_status"] == "RESOURCE_EXHAUSTED"
    assert data["quota"] == {
        "scope": "minute",
        "unit": "requests",
        "tier": "free",
        "limit": 10,
        "model": "gemini-2.5-flash",
        "quota_id": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
        "metric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
    }
    assert data["explanation"]["lang"] == "en"
    assert data["explanation"]["steps"]


def test_lang_zh_option() -> None:
    result = run("--lang", "zh", "--json", SDK_LINE)
    [data] = json.loads(result.stdout)
    assert data["explanation"]["lang"] == "zh"
    assert CJK.search(data["explanation"]["title"])
    text = run("--lang", "zh", SDK_LINE).stdout
    assert "超出每分钟配额" in text
    assert "怎么办" in text


def test_lang_from_the_locale() -> None:
    assert "超出每分钟配额" in run(SDK_LINE, lang="zh_CN.UTF-8").stdout
    assert "Per-minute quota exceeded" in run(SDK_LINE, lang="en_US.UTF-8").stdout


def test_exit_1_when_not_understood() -> None:
    result = run("the weather is nice")
    assert result.returncode == 1
    assert "Not recognised" in result.stdout
    [data] = json.loads(run("--json", "nothing to see").stdout)
    assert data["understood"] is False


def test_bare_code_explains_its_variants() -> None:
    result = run("429")
    assert result.returncode == 0, result.stderr
    for words in (
        "Per-minute quota exceeded",
        "Daily quota used up",
        "No quota at all",
        "without quota details",
    ):
        assert words in result.stdout
    variants = json.loads(run("--json", "429").stdout)
    assert {v["category"] for v in variants} >= {
        "rate_limited",
        "daily_quota_exhausted",
        "no_quota",
    }


def test_bare_code_without_samples() -> None:
    result = run("--json", "408")
    assert result.returncode == 0
    [only] = json.loads(result.stdout)
    assert only["category"] == "deadline_exceeded"
    assert only["retryable"] is True


def test_table() -> None:
    result = run("--table")
    assert result.returncode == 0
    for words in ("RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "DEADLINE_EXCEEDED", "503"):
        assert words in result.stdout
    assert "错误速查表" in run("--table", "--lang", "zh").stdout


def test_samples() -> None:
    result = run("--samples")
    assert result.returncode == 0, result.stderr
    data = json.loads(run("--samples", "--json").stdout)
    assert [d["category"] for d in data] == [
        "rate_limited",
        "daily_quota_exhausted",
        "no_quota",
        "overloaded",
        "invalid_api_key",
    ]
    assert "Midnight Pacific".lower() in result.stdout.lower()


def test_empty_stdin_is_not_understood() -> None:
    result = subprocess.run(
        [str(SCRIPT), "diagnose"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1


@pytest.mark.parametrize("key_in", ["argument", "stdin"])
def test_keys_are_not_echoed(key_in: str) -> None:
    key = "AIzaSyFAKEFAKEFAKEFAKEFAKEFAKEFAKE01234"
    text = f"GET https://generativelanguage.googleapis.com/v1/models?key={key} -> 403 Forbidden"
    result = run(text) if key_in == "argument" else run("-", stdin=text)
    assert key not in result.stdout + result.stderr


def test_a_bare_429_with_the_recent_rate() -> None:
    phantom = (
        '{"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", '
        '"status": "RESOURCE_EXHAUSTED"}}'
    )
    result = run(phantom, "--rate", "1", "--limit", "150", "--tier", "tier1")
    assert result.returncode == 0, result.stderr
    assert "0.7% of your Tier 1 limit" in result.stdout
    assert "not your quota" in result.stdout


MIXED_LOG = "\n".join(
    [
        "2026-02-01 10:00:00 INFO starting",
        "2026-02-01 10:00:01 WARNING " + SDK_LINE,
        "2026-02-01 10:00:03 WARNING " + SDK_LINE.replace("37s", "35s"),
        '2026-02-01 10:00:09 ERROR failed: {"error": {"code": 503, "message": '
        '"The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}',
        "2026-02-01 10:00:12 ERROR google.genai.errors.ClientError: 400 INVALID_ARGUMENT. "
        "{'error': {'code': 400, 'message': 'API key not valid. Please pass a valid API key.', "
        "'status': 'INVALID_ARGUMENT'}}",
        "2026-02-01 10:00:13 INFO done",
    ]
)


def test_a_log_with_several_errors_reports_each_with_its_count(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(MIXED_LOG, "utf-8")
    result = run(str(log))
    assert result.returncode == 0, result.stderr
    assert "3 different errors, 4 occurrences" in result.stdout
    for words in ("Per-minute quota exceeded", "overloaded", "API key is not valid"):
        assert words in result.stdout
    assert "×2, first at line 2" in result.stdout
    data = json.loads(run("--json", str(log)).stdout)
    assert [(d["category"], d["count"], d["first_line"]) for d in data] == [
        ("rate_limited", 2, 2),
        ("overloaded", 1, 4),
        ("invalid_api_key", 1, 5),
    ]


def test_a_saved_response_is_read_for_quiet_failures(tmp_path: Path) -> None:
    saved = tmp_path / "response.json"
    saved.write_text(
        json.dumps(
            {
                "candidates": [{"content": {"role": "model"}, "finishReason": "MAX_TOKENS"}],
                "usageMetadata": {"promptTokenCount": 8, "thoughtsTokenCount": 1000},
            }
        ),
        "utf-8",
    )
    result = run(str(saved))
    assert result.returncode == 0, result.stderr
    assert "Thinking used the whole output budget" in result.stdout
    [data] = json.loads(run("--json", str(saved)).stdout)
    assert data["category"] == "thinking_exhausted"
    assert data["is_problem"] is True


def test_a_text_past_the_limit_says_how_much_was_read(tmp_path: Path) -> None:
    from gemini_guard.diagnosis._log import MAX_LOG_CHARS

    log = tmp_path / "huge.log"
    line = "INFO routine\n"
    log.write_text(line * (MAX_LOG_CHARS // len(line) + 1000) + SDK_LINE + "\n", "utf-8")
    result = run(str(log))
    assert result.returncode == 0, result.stderr
    assert "only its last 2 M characters were read" in result.stderr
    assert "Per-minute quota exceeded" in result.stdout


def test_the_new_variants_are_explained_by_code() -> None:
    cancelled = run("499")
    assert cancelled.returncode == 0, cancelled.stderr
    assert "Cancelled on Google's side" in cancelled.stdout
    bad = json.loads(run("--json", "400").stdout)
    thought = [v for v in bad if "thought_signature" in v["message"]]
    assert len(thought) == 1
    assert "thought_signature" in " ".join(thought[0]["explanation"]["steps"])
