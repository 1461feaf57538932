"""The doctor's checklist, line by line, and its exit code, for each state of a key or model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gemini_guard.tiers import load_models
from tests.e2e.doctor.conftest import (
    CREDIT_KEY,
    GOOD_KEY,
    INVALID_KEY,
    NO_QUOTA_MODEL,
    OVERLOADED_MODEL,
    DoctorRun,
)

# --- real subprocesses: the cases the doctor exists for ----------------------------------------


def test_a_good_key_is_healthy_with_exit_code_zero(subprocess_runs: dict[str, DoctorRun]) -> None:
    run = subprocess_runs["good"]
    assert run.code == 0, run.stdout + run.stderr
    assert run.statuses() == {
        "api_key": "ok",
        "sdk_version": "ok",
        "endpoint": "ok",
        "isolation": "ok",
        "models": "ok",
        "model:gemini-2.5-flash": "ok",
        "tier": "skip",
        "store": "skip",
        "status_page": "warn",  # the loopback status URL refuses: offline is a warning
    }
    assert run.check("api_key")["detail"] == (
        f"GEMINI_API_KEY is set ({GOOD_KEY[:4]}…{GOOD_KEY[-4:]}); the format looks right"
    )
    assert run.check("sdk_version")["detail"] == ("google-genai 3.6.1 (oldest known good: 3.0.0)")
    endpoint = run.check("endpoint")["detail"]
    assert "DNS 127.0.0.1 → 127.0.0.1" in endpoint
    assert "TCP" in endpoint
    assert "HTTP 403 for /v1beta/models" in endpoint  # asked without a key, as Google answers
    assert run.check("isolation")["detail"].startswith("gemini-2.5-flash answered in")
    # the emulator lists the table's generation and embedding models
    generate = sum(spec.can_generate for spec in load_models().values())
    listed = generate + sum(
        not spec.can_generate and "embedContent" in spec.methods for spec in load_models().values()
    )
    assert (
        run.check("models")["detail"] == f"{listed} models listed, {generate} can generateContent"
    )
    assert run.check("model:gemini-2.5-flash")["detail"].startswith("gemini-2.5-flash answered")
    assert "could not reach" in run.check("status_page")["detail"]
    assert run.report["failed"] == 0
    run.assert_no_key_shown()


@pytest.mark.parametrize(
    ("case", "detail", "fix"),
    [
        ("invalid", "gemini-2.5-flash: 400 The API key is not valid", "aistudio.google.com/apikey"),
        ("region", "Not available from your location", "available-regions"),
        ("leaked", "reported as leaked", "Create a new key"),
    ],
)
def test_a_refused_key_fails_the_isolation_test_with_its_diagnosis(
    subprocess_runs: dict[str, DoctorRun], case: str, detail: str, fix: str
) -> None:
    run = subprocess_runs[case]
    assert run.code == 1, run.stdout + run.stderr
    isolation = run.check("isolation")
    assert isolation["status"] == "fail"
    assert isolation["detail"].startswith("gemini-2.5-flash")
    assert detail in isolation["detail"]
    assert fix in isolation["fix"]
    # Every further request would be refused the same way, so none is sent.
    assert run.check("models")["status"] == "skip"
    assert run.statuses() | {"isolation": "-", "models": "-"} == {
        "api_key": "ok",
        "sdk_version": "ok",
        "endpoint": "ok",
        "isolation": "-",
        "models": "-",
        "tier": "skip",
        "store": "skip",
        "status_page": "warn",
    }
    run.assert_no_key_shown()


def test_an_unknown_configured_model_fails_with_a_did_you_mean(
    subprocess_runs: dict[str, DoctorRun],
) -> None:
    run = subprocess_runs["unknown_model"]
    assert run.code == 1  # a check failed
    assert json.loads(run.stdout)["failed"] == 2
    typo = run.check("model:gemini-2.5-flsh")
    assert typo["status"] == "fail"
    assert typo["detail"] == "gemini-2.5-flsh is not in the models list of this key"
    assert typo["fix"] == "use gemini-2.5-flash in your configuration"
    retired = run.check("model:gemini-1.5-pro")
    assert retired["status"] == "fail"
    assert "retired" in retired["detail"]
    assert retired["fix"] == "use gemini-2.5-pro in your configuration"
    assert run.check("isolation")["status"] == "ok"


def test_an_overloaded_model_is_a_warning_not_a_failure(
    subprocess_runs: dict[str, DoctorRun], emulator: Any
) -> None:
    run = subprocess_runs["overloaded"]
    assert run.code == 0
    line = run.check(f"model:{OVERLOADED_MODEL}")
    assert line["status"] == "warn"
    assert line["detail"] == f"{OVERLOADED_MODEL}: The model is overloaded (503 UNAVAILABLE)"
    assert "Fall back to a lighter model" in line["fix"]
    assert run.check("isolation")["status"] == "ok"  # the key and project are fine
    # The probe really reached the emulator and met its fault.
    pro = emulator.emulator.stats()["projects"]["good"][OVERLOADED_MODEL]
    assert pro["rejected"]["overloaded"] >= 1


# --- in-process: the finer cases ------------------------------------------------------------------


def test_the_human_checklist_marks_each_line_and_gives_fixes(doctor: Any) -> None:
    run = doctor("--model", OVERLOADED_MODEL, env={"GEMINI_API_KEY": GOOD_KEY})
    assert run.code == 0
    assert run.line("API key").startswith("✓")
    assert run.line("google-genai version").startswith("✓")
    assert run.line("Endpoint").startswith("✓")
    assert run.line("Isolation test").startswith("✓")
    assert run.line("Models list").startswith("✓")
    assert run.line(f"Model {OVERLOADED_MODEL}").startswith("!")
    assert run.line("Tier").startswith("-")
    assert run.line("Status page").startswith("!")
    fixes = [ln.strip() for ln in run.stdout.splitlines() if "→ fix:" in ln]
    assert len(fixes) == 2  # one under each warning
    assert run.stdout.rstrip().endswith("0 failed, 2 warnings")
    run.assert_no_key_shown()


def test_a_credit_depleted_key_fails_with_the_top_up_fix(doctor: Any) -> None:
    run = doctor("--json", env={"GEMINI_API_KEY": CREDIT_KEY})
    assert run.code == 1
    isolation = run.check("isolation")
    assert isolation["status"] == "fail"
    assert "Prepaid credits are used up" in isolation["detail"]
    assert "top up" in isolation["fix"]


def test_the_tier_is_guessed_from_a_429s_quota_id_and_compared_with_the_config(
    doctor: Any,
) -> None:
    run = doctor(
        "--json", "--model", NO_QUOTA_MODEL, "--tier", "tier1", env={"GEMINI_API_KEY": GOOD_KEY}
    )
    assert run.check(f"model:{NO_QUOTA_MODEL}")["status"] in {"warn", "fail"}
    tier = run.check("tier")
    assert tier["status"] == "warn"
    assert "configured as tier1, but the API says free" in tier["detail"]
    assert "FreeTier" in tier["detail"]
    assert "billing" in tier["fix"]
    agreeing = doctor(
        "--json", "--model", NO_QUOTA_MODEL, "--tier", "free", env={"GEMINI_API_KEY": GOOD_KEY}
    )
    assert agreeing.check("tier")["status"] == "ok"


def test_no_key_fails_once_and_skips_what_needs_one(doctor: Any) -> None:
    run = doctor("--json", env={})
    assert run.code == 1
    assert run.check("api_key")["status"] == "fail"
    assert "GEMINI_API_KEY" in run.check("api_key")["fix"]
    assert run.check("isolation")["status"] == "skip"
    assert run.check("models")["status"] == "skip"


def test_google_api_key_wins_over_gemini_api_key_like_the_sdk(doctor: Any) -> None:
    run = doctor("--json", env={"GOOGLE_API_KEY": INVALID_KEY, "GEMINI_API_KEY": GOOD_KEY})
    key = run.check("api_key")
    assert key["status"] == "warn"
    assert "google-genai uses GOOGLE_API_KEY" in key["detail"]
    # The SDK's choice is what the isolation test really used: the invalid key.
    assert run.check("isolation")["status"] == "fail"
    assert run.code == 1
    run.assert_no_key_shown()


def test_an_unreachable_endpoint_fails_at_tcp_and_skips_the_api_checks(
    doctor: Any, closed_port_url: str
) -> None:
    base = closed_port_url.removesuffix("/status")
    run = doctor("--json", base_url=base, env={"GEMINI_API_KEY": GOOD_KEY})
    assert run.code == 1
    endpoint = run.check("endpoint")
    assert endpoint["status"] == "fail"
    assert "TCP failed" in endpoint["detail"]
    assert "firewalls" in endpoint["fix"]
    assert run.check("isolation")["status"] == "skip"


def test_chinese_output(doctor: Any) -> None:
    run = doctor("--lang", "zh", env={"GEMINI_API_KEY": INVALID_KEY})
    assert run.code == 1
    assert run.line("隔离测试").startswith("✗")
    assert run.line("API 密钥").startswith("✓")
    assert "→ 修复:" in run.stdout
    assert run.stdout.rstrip().endswith("1 项失败，1 项警告")


def test_config_file_supplies_models_store_tier_and_key_variable(
    doctor: Any, tmp_path: Path
) -> None:
    config = tmp_path / "gemini-guard.toml"
    db = tmp_path / "state.db"
    config.write_text(
        f'models = ["gemini-2.5-flash", "gemini-2.5-flsh"]\nstore = "sqlite:///{db}"\n'
        'tier = "free"\n\n[[projects]]\nname = "main"\napi_key_env = "MAIN_GEMINI_KEY"\n',
        encoding="utf-8",
    )
    run = doctor(
        "--json",
        "--config",
        str(config),
        env={"MAIN_GEMINI_KEY": GOOD_KEY, "GOOGLE_API_KEY": INVALID_KEY},
    )
    assert run.code == 1
    # The Guard reads the configured variable only, so the doctor tests that key.
    assert run.check("api_key")["detail"].startswith("MAIN_GEMINI_KEY is set")
    assert run.check("isolation")["status"] == "ok"
    assert run.check("model:gemini-2.5-flash")["status"] == "ok"
    assert run.check("model:gemini-2.5-flsh")["status"] == "fail"
    assert run.check("store")["status"] == "ok"
    run.assert_no_key_shown()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('models = "gemini-2.5-flash\n', "not valid TOML"),
        ('tier = "gold"\n', "tier"),
        ('[[projects]]\napi_key = "AIza-in-the-file"\n', "never put an API key"),
    ],
)
def test_a_broken_config_file_is_a_usage_error_naming_it(
    doctor: Any, tmp_path: Path, text: str, error: str
) -> None:
    config = tmp_path / "gemini-guard.toml"
    config.write_text(text, encoding="utf-8")
    run = doctor("--config", str(config), env={"GEMINI_API_KEY": GOOD_KEY})
    assert run.code == 2
    assert error in run.stderr
