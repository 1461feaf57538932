"""The convention every command keeps: exit codes, --json, --lang, one-line errors.

0 success · 1 ran and found a problem · 2 usage error · 130 interrupted
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from gemini_guard.cli import _SUBCOMMANDS, main
from gemini_guard.cli._scenarios import scenario_names
from gemini_guard.emulator import builtin_scenarios

SCRIPT = Path(sys.executable).with_name("gemini-guard")
KEY = "AIzaSyCONVENTIONTEST-0123456789abcdefgh"


def run(*args: str, lang: str = "en_US.UTF-8", **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GOOGLE_"))}
    base.update({"LANG": lang, "LC_ALL": "", "COLUMNS": "100", "NO_COLOR": "1"}, **env)
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=120, env=base, check=False
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"id": i, "prompt": f"p{i}"}) + "\n" for i in range(3)))
    return path


# --- help: exit codes, --lang and --debug on every command ---------------------------------


@pytest.mark.parametrize("name", sorted(_SUBCOMMANDS))
def test_every_command_documents_the_exit_codes_and_takes_lang_and_debug(name: str) -> None:
    english = CliRunner().invoke(main, [name, "--help"])
    assert english.exit_code == 0, english.output
    assert "Exit codes: 0 success; 1 the command ran and found a problem; 2 usage error;" in (
        english.output
    )
    for flag in ("--lang", "--debug"):
        assert flag in english.output
    chinese = CliRunner().invoke(main, [name, "--lang", "zh", "--help"])
    assert "退出码：0 成功" in chinese.output
    assert "用法：" in chinese.output


_ENGLISH_PROSE = re.compile(r"\b[a-z]{2,}(?: [a-z]{2,}){3,}\b")


def _english_prose(text: str) -> list[str]:
    """Lines with four or more English words in a row: prose left untranslated."""
    return [line for line in text.splitlines() if _ENGLISH_PROSE.search(line)]


@pytest.mark.parametrize("name", [None, *sorted(_SUBCOMMANDS)])
def test_chinese_help_has_no_english_prose(name: str | None) -> None:
    args = ["--help"] if name is None else [name, "--help"]
    result = run(*args, lang="zh_CN.UTF-8")
    assert result.returncode == 0, result.stderr
    assert _english_prose(result.stdout) == []


# --- diagnose -------------------------------------------------------------------------------


def test_diagnose_exit_codes_and_json() -> None:
    understood = run("diagnose", "--json", "429 RESOURCE_EXHAUSTED quota exceeded")
    assert understood.returncode == 0, understood.stderr
    [diagnosis] = json.loads(understood.stdout)  # one entry per distinct error in the text
    assert diagnosis["understood"] is True
    assert run("diagnose", "the weather is nice").returncode == 1
    assert run("diagnose", "--no-such-flag").returncode == 2


# --- doctor ---------------------------------------------------------------------------------


@pytest.fixture
def refused_url() -> Iterator[str]:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def test_doctor_exits_1_on_a_failed_check_with_json(refused_url: str) -> None:
    result = run(
        "doctor", "--json", "--no-probe", "--timeout", "1", "--base-url", refused_url,
        "--status-url", refused_url + "/status", GEMINI_API_KEY=KEY,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    payload = json.loads(result.stdout)
    assert payload["failed"] >= 1
    assert {"name", "status", "title", "detail"} <= set(payload["checks"][0])
    assert KEY not in result.stdout + result.stderr
    assert run("doctor", "--tier", "gold").returncode == 2


# --- emulate --------------------------------------------------------------------------------


def test_every_scenario_is_listed_bad_day_included() -> None:
    result = run("emulate", "--list-scenarios", "--json")
    assert result.returncode == 0, result.stderr
    names = [row["name"] for row in json.loads(result.stdout)["scenarios"]]
    assert names == sorted(names)
    assert set(names) == set(builtin_scenarios()) | {"bad-day"} == set(scenario_names())
    text = run("emulate", "--list-scenarios").stdout
    assert all(name in text for name in names)


def test_emulate_serves_bad_day_and_ctrl_c_is_its_normal_end() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEMINI_")}
    proc = subprocess.Popen(
        [str(SCRIPT), "emulate", "--scenario", "bad-day", "--port", "0", "--time-scale", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("scenario: bad-day - dec-2025-cut limits"), first
        for line in proc.stdout:
            if "listening on" in line:
                url = line.rsplit(" ", 1)[1].strip()
                break
        import httpx

        answer = httpx.post(
            f"{url}/v1beta/models/gemini-2.5-flash:generateContent",
            headers={"x-goog-api-key": "any-key"},
            json={"contents": [{"parts": [{"text": "hi"}]}]},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "emulator stopped" in out
    assert "Traceback" not in err


def test_emulate_usage_errors() -> None:
    assert run("emulate", "--scenario", "no-such-day").returncode == 2
    assert run("emulate", "--port", "70000").returncode == 2
    assert run("emulate", "--json").returncode == 2


# --- batch ----------------------------------------------------------------------------------


def test_batch_json_summary(prompts: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    result = run("batch", str(prompts), "-o", str(out), "--emulate", "healthy", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["total"], summary["done"], summary["failed"]) == (3, 3, 0)
    assert summary["files"]["output"] == str(out)
    assert summary["exit_code"] == 0
    assert "times below (rate, ETA) are emulated" in result.stderr


def test_batch_eta_under_tier_auto_is_not_zero_at_the_start(prompts: Path, tmp_path: Path) -> None:
    many = tmp_path / "many.jsonl"
    many.write_text("".join(json.dumps({"id": i, "prompt": "p"}) + "\n" for i in range(40)))
    result = run(
        "batch", str(many), "-o", str(tmp_path / "o.jsonl"), "--emulate", "free-tier",
        "--model", "gemini-2.5-pro", "--time-scale", "600", "--concurrency", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    first = next(line for line in result.stderr.splitlines() if re.match(r"\d+/40 ", line))
    # 2 of 40 done at most; the free tier's 5 RPM on pro leaves minutes of work.
    assert "ETA 0s" not in first, first
    assert re.search(r"ETA \d+m", first), first


@pytest.mark.parametrize(
    ("output", "needle"),
    [
        ("missing/out.jsonl", "the directory does not exist. Create the directory"),
        (".", "it is a directory, not a file. Give the path of a file."),
    ],
)
def test_batch_output_mistakes_are_one_line(
    prompts: Path, tmp_path: Path, output: str, needle: str
) -> None:
    result = run("batch", str(prompts), "-o", str(tmp_path / output), "--emulate", "healthy")
    assert result.returncode in (1, 2)
    line = one_line_error(result) if result.returncode == 1 else result.stderr
    assert needle in line or "is a directory" in line


def test_batch_output_not_writable_is_one_line(prompts: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("")
    out.chmod(0o444)
    command = [str(SCRIPT), "batch", str(prompts), "-o", str(out), "--emulate", "healthy"]
    if os.geteuid() == 0:
        # Root ignores file modes; without CAP_DAC_OVERRIDE (util-linux's setpriv) it
        # is held to them like any user.
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("root ignores file modes and setpriv is missing")
        caps = "-dac_override,-dac_read_search"
        command = [setpriv, "--bounding-set", caps, "--inh-caps", caps, "--", *command]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GOOGLE_"))}
    env.update({"LANG": "en_US.UTF-8", "LC_ALL": "", "COLUMNS": "100", "NO_COLOR": "1"})
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 1
    assert "permission denied" in one_line_error(result)


def test_config_mistakes_are_usage_errors_without_traceback(prompts: Path, tmp_path: Path) -> None:
    binary = tmp_path / "binary.toml"
    binary.write_bytes(bytes(range(256)) * 4)
    for config, needle in ((tmp_path, "is a directory"), (binary, "not a text file")):
        for command in (
            ["plan", str(prompts)],
            ["batch", str(prompts), "-o", str(tmp_path / "o.jsonl"), "--emulate", "healthy"],
            ["doctor", "--no-probe"],
            ["quota"],
            ["demo", "--prompts", "1"],
        ):
            result = run(*command, "--config", str(config))
            assert result.returncode == 2, (command, result.stderr)
            assert needle in result.stderr, (command, result.stderr)
            assert "Traceback" not in result.stderr


def test_an_unwritable_telemetry_file_is_one_line(prompts: Path, tmp_path: Path) -> None:
    config = tmp_path / "gemini-guard.toml"
    config.write_text(f'[telemetry]\njsonl = "{tmp_path / "no" / "events.jsonl"}"\n')
    result = run("batch", str(prompts), "-o", str(tmp_path / "o.jsonl"), "--config", str(config))
    assert result.returncode == 1
    line = one_line_error(result)
    assert "[telemetry] jsonl" in line
    assert str(tmp_path / "no") in line
    chinese = run(
        "batch", str(prompts), "-o", str(tmp_path / "o.jsonl"), "--config", str(config),
        lang="zh_CN.UTF-8",
    )  # fmt: skip
    assert "目录不存在" in one_line_error(chinese)


# --- plan, quota ----------------------------------------------------------------------------


def test_plan_json_and_usage_errors(prompts: Path) -> None:
    result = run("plan", str(prompts), "--json", "--model", "gemini-2.5-pro,gemini-2.5-flash")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert (plan["model"], plan["tier"], plan["requests"]) == ("gemini-2.5-pro", "free", 3)
    assert {"time", "cost_usd", "tiers", "smallest_tier_within_a_day"} <= set(plan)
    assert run("plan", "no-such-file.jsonl").returncode == 2
    assert run("plan", str(prompts), "--tier", "gold").returncode == 2


def test_quota_json_names_the_store_and_refuses_memory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    result = run("quota", "--store", url, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"store": url, "tier": "auto", "ledgers": [], "cache": None}
    memory = run("quota", "--store", "memory://")
    assert memory.returncode == 1
    assert "lives and dies with one process" in one_line_error(memory)


# --- interrupted, --debug --------------------------------------------------------------------


@pytest.fixture
def raising_command() -> Iterator[list[BaseException]]:
    """A throwaway subcommand that raises what the test puts in the list."""
    from gemini_guard.cli._common import GuardCommand

    errors: list[BaseException] = []

    @main.command("raise-for-test", cls=GuardCommand)
    def raise_for_test() -> None:
        raise errors[0]

    try:
        yield errors
    finally:
        main.commands.pop("raise-for-test", None)


def test_ctrl_c_exits_130(raising_command: list[BaseException]) -> None:
    raising_command.append(KeyboardInterrupt())
    result = CliRunner().invoke(main, ["raise-for-test"])
    assert result.exit_code == 130
    assert "interrupted" in result.output


def test_an_os_error_is_one_line_unless_debug(raising_command: list[BaseException]) -> None:
    raising_command.append(PermissionError(13, "Permission denied", "/var/lib/x.db"))
    plain = CliRunner().invoke(main, ["raise-for-test"])
    assert plain.exit_code == 1
    assert plain.output.strip() == (
        "gemini-guard: error: cannot open: /var/lib/x.db: permission denied. "
        "Check the file's permissions or choose another path."
    )
    debug = CliRunner().invoke(main, ["--debug", "raise-for-test"])
    assert isinstance(debug.exception, PermissionError)  # the traceback is the user's to see
    also = CliRunner().invoke(main, ["raise-for-test", "--debug"])
    assert isinstance(also.exception, PermissionError)


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gemini_guard", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    from gemini_guard import __version__

    assert result.stdout.strip() == f"gemini-guard, version {__version__}"


def test_click_is_the_cli_extra() -> None:
    assert click.__name__ == "click"  # the dev install has [cli]; the wheel check covers core


# --- Chinese output ----------------------------------------------------------------------


def test_chinese_batch_demo_and_quota_output_has_no_english_prose(
    prompts: Path, tmp_path: Path
) -> None:
    zh = "zh_CN.UTF-8"
    batch = run("batch", str(prompts), "-o", str(tmp_path / "o.jsonl"), "--emulate", "healthy",
                lang=zh)  # fmt: skip
    assert batch.returncode == 0, batch.stderr
    assert "共 3 个请求：3 个完成" in batch.stderr
    assert re.search(r"^3/3  完成 3  失败 0  等待配额 0  ", batch.stderr, re.M), batch.stderr
    assert _english_prose(batch.stderr) == []
    demo = run("demo", "--prompts", "4", "--concurrency", "2", "--time-scale", "600", lang=zh)
    assert demo.returncode == 0, demo.stderr
    assert "模拟耗时" in demo.stdout
    assert _english_prose(demo.stdout) == []
    quota = run("quota", "--store", f"sqlite:///{tmp_path / 'none.db'}", lang=zh)
    assert "尚不存在" in quota.stdout
    assert _english_prose(quota.stdout) == []


def test_chinese_plan_and_models_output_has_no_english_prose(prompts: Path) -> None:
    zh = "zh_CN.UTF-8"
    known = run("plan", str(prompts), "--model", "gemini-2.5-flash", lang=zh)
    assert known.returncode == 0, known.stderr
    assert "3 个请求，模型 gemini-2.5-flash，层级 free" in known.stdout
    assert "一天内能完成的最低层级" in known.stdout
    unknown = run("plan", str(prompts), "--model", "gemini-9-unreleased", lang=zh)
    assert unknown.returncode == 0, unknown.stderr
    assert "不在模型表中" in unknown.stdout
    assert "成本：未知" in unknown.stdout
    for result in (known, unknown):
        assert _english_prose(result.stdout) == [], result.stdout
    english = run("plan", str(prompts), "--model", "gemini-2.5-flash")
    assert "3 requests on gemini-2.5-flash, tier free" in english.stdout
    models = run("models", lang=zh)
    assert models.returncode == 0, models.stderr
    assert "核对日期" in models.stdout
    assert "未列出的模型同样可用" in models.stdout
    assert _english_prose(models.stdout) == [], models.stdout


def test_shell_completion_knows_the_commands_and_scenarios() -> None:
    def complete(words: str, index: int) -> list[str]:
        return run(
            _GEMINI_GUARD_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=str(index)
        ).stdout.split()

    assert "plain,emulate" in complete("gemini-guard em", 1)
    assert complete("gemini-guard emulate --scenario bad", 3) == ["plain,bad-day"]
    assert "plain,bad-day" in complete("gemini-guard batch in.jsonl --emulate b", 4)
