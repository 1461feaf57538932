"""Every command, run for real in Chinese, prints no line left in English.

Each command runs as the console script against the emulator or a fixture, twice: with
`--lang zh` under an English locale, and with no flag under LANG=zh_CN.UTF-8. A line of
its output (stdout and stderr) that holds a Latin word but no Chinese character fails,
unless every Latin word on it is one of the things that stay as they are in both
languages (`_TECHNICAL`): URLs, paths, flags, model names, upper-case terms (RPM, 429's
RESOURCE_EXHAUSTED, env variables), words with digits (p50, 7m05s), dotted, snake-case,
hyphenated or camelCase identifiers (models.list, api_key, team-a, quotaId), the name
Guard; or the line is code `emulate` prints for the user to paste (`_CODE_LINES`), or a
piece of an API message a diagnosis quotes verbatim. Lines that mix Chinese with
English fragments pass that rule, so the tests also look for the Chinese of the texts
that used to stay English (the report's summary, the reader's reasons, ...). `--json`
output is checked the other way: the same keys in every language, and the same values
where nothing explains itself in words.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gemini_guard.clock import FakeClock
from gemini_guard.emulator import EmulatorServer, serve
from gemini_guard.quota import QuotaLimiter
from tests.support.credentials import new_private_key, write_service_account

SCRIPT = Path(sys.executable).with_name("gemini-guard")
KEY = "AIzaSyCHINESETEST-0123456789abcdefghijk"

_CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
# What stays as it is in both languages; everything else made of Latin letters is prose.
_TECHNICAL = re.compile(
    r"""
      \b[a-z][a-z0-9+.-]*://\S*                     # URLs, store URLs
    | (?<![\w/])(?:~|\.{1,2})?/[\w.@:~/-]*           # paths
    | (?<![\w-])--?[a-z][\w-]*                       # flags
    | \b(?:models/)?gemini-[\w.-]+                   # model names
    | \b[A-Z][A-Z0-9_]+\b                            # RPM, TPM, RESOURCE_EXHAUSTED, env names
    | \b[\w-]*\d[\w-]*\b                             # words with digits: p50, 7m05s, x60, v1beta
    | \b[A-Za-z]\w*(?:[-._:][A-Za-z0-9]\w*)+\b       # models.list, api_key, team-a
    | \b[a-z]+[A-Z]\w*\b                            # camelCase: quotaId, retryDelay
    | \bGuard\b                                     # the product's own name
    """,
    re.VERBOSE,
)
# The lines `emulate` prints for the user to paste into a shell or a program.
_CODE_LINES = re.compile(
    r"^\s*(?:export |from google(?:\.genai)? import |client = genai\.Client|"
    r"import \{ GoogleGenAI \}|const ai = new GoogleGenAI|\}\)\)?;?$|http_options=)"
)


def _words(text: str) -> str:
    return " ".join(text.replace("│", " ").replace("…", " ").split())


def untranslated(text: str, quoted: tuple[str, ...] = ()) -> list[str]:
    """The lines of `text` that hold prose in Latin letters and no Chinese character.

    `quoted` are the API's own messages, which a diagnosis shows verbatim (wrapped over
    several lines): a line that is a piece of one of them is not ours to translate."""
    pieces = [_words(message) for message in quoted]
    bad = []
    for line in text.splitlines():
        if _CJK.search(line) or _CODE_LINES.search(line):
            continue
        if not _LATIN_WORD.search(_TECHNICAL.sub(" ", line)):
            continue
        if _words(line) and any(_words(line) in piece for piece in pieces):
            continue
        bad.append(line)
    return bad


def test_the_rule_flags_english_and_lets_identifiers_through() -> None:
    assert untranslated("3 requests on gemini-2.5-flash, tier free") == [
        "3 requests on gemini-2.5-flash, tier free"
    ]
    assert untranslated("gemini-guard: error: no limit") != []
    assert untranslated("3 个请求，模型 gemini-2.5-flash") == []
    message = "You exceeded your current quota, please check your plan and billing details."
    assert untranslated("│      please check your plan and …  │", (message,)) == []
    assert untranslated("│      please check your bill  │", (message,)) != []
    allowed = (
        "  gemini-2.5-pro   1,048,576  5 RPM, 100 RPD   2026-02-01",
        "export GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:8080",
        "─────┼──────  p50 p90 p99  7m05s  x60",
        "~/.cache/gemini-guard/state.db  --time-scale  models.list  429 RESOURCE_EXHAUSTED",
    )
    for line in allowed:
        assert untranslated(line) == [], line


@dataclass(frozen=True)
class Ran:
    args: tuple[str, ...]
    how: str
    code: int
    out: str
    err: str


def run(*args: str, how: str, cwd: Path | None = None, **env: str) -> Ran:
    """The console script in Chinese: `how` is "flag" (--lang zh under an English locale)
    or "locale" (LANG=zh_CN.UTF-8, no flag)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GOOGLE_"))}
    base.update({"LC_ALL": "", "LC_MESSAGES": "", "COLUMNS": "120", "NO_COLOR": "1"})
    argv = list(args)
    if how == "flag":
        base["LANG"] = "en_US.UTF-8"
        argv.insert(1, "--lang")
        argv.insert(2, "zh")
    else:
        base["LANG"] = "zh_CN.UTF-8"
    base.update(env)
    done = subprocess.run(
        [str(SCRIPT), *argv],
        capture_output=True,
        text=True,
        timeout=180,
        env=base,
        cwd=cwd,
        check=False,
    )
    return Ran(tuple(args), how, done.returncode, done.stdout, done.stderr)


def assert_chinese(ran: Ran, *expect_codes: int, quoted: tuple[str, ...] = ()) -> None:
    assert ran.code in (expect_codes or (0,)), (ran.args, ran.how, ran.code, ran.err)
    assert "Traceback" not in ran.err, ran.err
    assert ran.out.strip() or ran.err.strip(), ran.args
    bad = untranslated(ran.out, quoted) + untranslated(ran.err, quoted)
    assert bad == [], f"{' '.join(ran.args)} ({ran.how}): English lines:\n" + "\n".join(bad)


HOWS = ("flag", "locale")


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with serve({"name": "lists-models", "quotas": False}, clock=FakeClock()) as server:
        yield server


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zh")


@pytest.fixture(scope="module")
def prompts(workdir: Path) -> Path:
    """Three good requests and three bad lines the input reader sets aside."""
    path = workdir / "in.jsonl"
    good = "".join(json.dumps({"id": i, "prompt": f"p{i}"}) + "\n" for i in range(3))
    bad = '{"id": 9, "prompt": 3}\n{"prompt": "no id"}\nnot json\n{"id": 0, "prompt": "again"}\n'
    path.write_text(good + bad, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def filled_store(workdir: Path) -> str:
    """A SQLite quota store one project used just now."""
    url = f"sqlite:///{workdir / 'state.db'}"
    clock = FakeClock(start=time.time() - 30.0)  # the CLI reads the real clock
    gate = QuotaLimiter(store=url, clock=clock, tier="free", latency_allowance=0.0)
    for tokens in (100, 200):
        permit = gate.reserve(project="team-a", model="gemini-2.5-flash", tokens=tokens)
        gate.settle(permit, sent=True, input_tokens=tokens)
        clock.advance(5.0)
    gate.close()
    return url


@pytest.fixture(scope="module")
def events(workdir: Path) -> Path:
    """A run's events with one of each thing the report's summary tells."""
    path = workdir / "events.jsonl"
    t0 = 1_767_000_000.0
    rows: list[dict[str, object]] = []

    def event(kind: str, at: float, **fields: object) -> None:
        rows.append({"event": kind, "timestamp": at, **fields})

    pro, flash = "gemini-2.5-pro", "gemini-2.5-flash"
    for i in range(40):
        at, call, served = t0 + i * 6, f"c{i}", pro
        event("attempt_started", at, model=pro, call_id=call)
        if 5 <= i < 25:  # a 503 storm on pro, each call answered by flash
            event("attempt_failed", at + 1, model=pro, call_id=call, category="overloaded",
                  http_status=503)  # fmt: skip
            event("fallback_taken", at + 1, model=pro, to_model=flash, call_id=call)
            event("attempt_started", at + 1, model=flash, call_id=call)
            served = flash
        if i == 30:
            event("call_failed", at + 2, model=pro, call_id=call, error="FallbackExhausted")
            continue
        event("call_succeeded", at + 2, model=served, call_id=call, elapsed=1.5)
        event("call_usage", at + 2, model=served, cost_usd=0.002, input_tokens=100,
              output_tokens=50)  # fmt: skip
    event("quota_notice", t0 + 60, model=flash, metric="rpm", limit=5)
    event("breaker_state_changed", t0 + 90, model=pro, new="open")
    event("alert", t0 + 100, rule="error_rate")
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# --- the commands, each in both ways of asking for Chinese ---------------------------------


@pytest.mark.parametrize("how", HOWS)
def test_diagnose(how: str) -> None:
    quota = (
        '{"error": {"code": 429, "message": "You exceeded your current quota, please check '
        'your plan and billing details.", "status": "RESOURCE_EXHAUSTED", "details": ['
        '{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{'
        '"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",'
        ' "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier", '
        '"quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"}, '
        '"quotaValue": "10"}]}, {"@type": "type.googleapis.com/google.rpc.RetryInfo", '
        '"retryDelay": "37s"}]}}'
    )
    from gemini_guard.diagnosis._reference import load_samples

    messages = tuple(sample.diagnosis().message for sample in load_samples())
    assert_chinese(run("diagnose", quota, how=how), quoted=messages)
    assert_chinese(run("diagnose", "503", how=how))
    assert_chinese(run("diagnose", "--table", how=how))
    assert_chinese(run("diagnose", "--samples", how=how), quoted=messages)
    assert_chinese(run("diagnose", "the weather is nice", how=how), 1)


@pytest.mark.parametrize("how", HOWS)
def test_emulate_list_scenarios(how: str) -> None:
    ran = run("emulate", "--list-scenarios", how=how)
    assert_chinese(ran)
    assert "没有配额、没有故障、没有延迟" in ran.out


@pytest.mark.parametrize("how", HOWS)
def test_batch(how: str, prompts: Path, workdir: Path) -> None:
    out = workdir / f"out-{how}.jsonl"
    ran = run(
        "batch", str(prompts), "-o", str(out), "--emulate", "healthy", "--metrics-port", "0",
        how=how,
    )  # fmt: skip
    assert_chinese(ran)
    assert "指标：http://127.0.0.1:" in ran.err, ran.err
    assert '4 行输入被拒绝（第一处：第 4 行："prompt" 必须是字符串' in ran.err, ran.err
    failing = run(
        "batch", str(prompts), "-o", str(workdir / f"fail-{how}.jsonl"), "--emulate", "overload",
        "--model", "gemini-2.5-pro", "--speed", "600", how=how,
    )  # fmt: skip
    assert_chinese(failing, 0, 1)
    assert "--speed 已弃用" in failing.err, failing.err
    job = run(
        "batch", str(prompts), "-o", str(workdir / f"job-{how}.jsonl"), "--emulate", "healthy",
        "--mode", "batch-api", how=how,
    )  # fmt: skip
    assert_chinese(job)
    assert "batch-api：已将 3 个请求提交为 batches/" in job.err, job.err


@pytest.mark.parametrize("how", HOWS)
def test_plan(how: str, prompts: Path) -> None:
    assert_chinese(run("plan", str(prompts), "--model", "gemini-2.5-flash", how=how))
    assert_chinese(run("plan", str(prompts), "--model", "gemini-9-unreleased", how=how))


@pytest.mark.parametrize("how", HOWS)
def test_quota(how: str, filled_store: str, workdir: Path) -> None:
    assert_chinese(run("quota", "--store", filled_store, "--tier", "free", how=how))
    assert_chinese(run("quota", "--store", f"sqlite:///{workdir / 'none.db'}", how=how))
    assert_chinese(run("quota", "--store", "memory://", how=how), 1)
    cache = f"sqlite:///{workdir / 'no-cache.db'}"
    assert_chinese(run("quota", "--store", filled_store, "--cache", cache, how=how))


@pytest.mark.parametrize("how", HOWS)
def test_doctor(how: str, emulator: EmulatorServer) -> None:
    url = emulator.base_url
    healthy = run(
        "doctor", "--base-url", url, "--status-url", url + "/_emulator/stats",
        "--model", "gemini-2.5-flash", "--timeout", "10", how=how, GEMINI_API_KEY=KEY,
    )  # fmt: skip
    assert_chinese(healthy, 0, 1)
    refused = run(
        "doctor", "--no-probe", "--timeout", "1", "--base-url", "http://127.0.0.1:9",
        "--status-url", "http://127.0.0.1:9/status", how=how, GEMINI_API_KEY=KEY,
    )  # fmt: skip
    assert_chinese(refused, 1)


@pytest.mark.parametrize("how", HOWS)
def test_doctor_on_vertex(how: str, emulator: EmulatorServer, workdir: Path) -> None:
    home = workdir / f"home-{how}"
    home.mkdir()
    key = write_service_account(
        workdir / f"sa-{how}.json", pem=new_private_key(),
        email="zh@zh-project.iam.gserviceaccount.com", project="zh-project",
        token_uri=emulator.base_url + "/token",
    )  # fmt: skip
    url = emulator.base_url
    healthy = run(
        "doctor", "--vertex", "--base-url", url, "--status-url", url + "/_emulator/stats",
        "--model", "gemini-2.5-flash", "--timeout", "10", how=how, HOME=str(home),
        CLOUDSDK_CONFIG="", GOOGLE_APPLICATION_CREDENTIALS=str(key),
        GOOGLE_CLOUD_PROJECT="zh-project", GOOGLE_CLOUD_LOCATION="us-central1",
    )  # fmt: skip
    assert_chinese(healthy)
    assert (
        "服务账号 zh@zh-project.iam.gserviceaccount.com，来自 GOOGLE_APPLICATION_CREDENTIALS"
        in (healthy.out)
    )
    missing = run(
        "doctor", "--vertex", "--no-probe", "--timeout", "1", "--base-url", "http://127.0.0.1:9",
        "--status-url", "http://127.0.0.1:9/status", how=how, HOME=str(home), CLOUDSDK_CONFIG="",
    )  # fmt: skip
    assert_chinese(missing, 1)
    assert "没有凭据" in missing.out, missing.out
    assert "没有项目" in missing.out, missing.out


@pytest.mark.parametrize("how", HOWS)
def test_demo_and_the_report_of_its_run(how: str) -> None:
    demo = run("demo", "--prompts", "6", "--concurrency", "3", "--time-scale", "600", how=how)
    assert_chinese(demo)
    page = re.search(r"(/\S+)\.html$", demo.out, re.M)
    assert page is not None, demo.out
    ran = run("report", page[1] + ".jsonl", "--format", "text", how=how)
    assert_chinese(ran)
    assert "个调用回退到 gemini-2.5-flash" in ran.out, ran.out


@pytest.mark.parametrize("how", HOWS)
def test_report(how: str, events: Path, workdir: Path) -> None:
    ran = run("report", str(events), "--format", "text", how=how)
    assert_chinese(ran)
    assert "熔断器打开了 1 次" in ran.out, ran.out
    assert_chinese(run("report", str(events), "-o", str(workdir / f"r-{how}.html"), how=how))
    empty = workdir / "empty.jsonl"
    empty.write_text("")
    assert_chinese(run("report", str(empty), "--format", "text", how=how))
    missing = run("report", str(workdir / "missing.jsonl"), how=how)
    assert_chinese(missing, 2)
    assert "没有这个事件文件" in missing.err, missing.err
    broken = workdir / "broken.jsonl"
    broken.write_text('{"event": "call_succeeded"}\n')
    assert_chinese(run("report", str(broken), how=how), 2)


@pytest.mark.parametrize("how", HOWS)
def test_models(how: str, emulator: EmulatorServer, workdir: Path) -> None:
    assert_chinese(run("models", how=how))
    assert_chinese(run("models", "--refresh", how=how), 1)
    refreshed = run(
        "models", "--refresh", "--output", str(workdir / f"models-{how}.toml"),
        "--base-url", emulator.base_url, how=how, GEMINI_API_KEY=KEY,
    )  # fmt: skip
    assert_chinese(refreshed)
    assert KEY not in refreshed.out + refreshed.err


@pytest.mark.parametrize("how", HOWS)
def test_emulate_serving(how: str) -> None:
    argv = [str(SCRIPT), "emulate", "--scenario", "bad-day", "--port", "0"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GOOGLE_"))}
    env.update({"PYTHONUNBUFFERED": "1", "LC_ALL": "", "LC_MESSAGES": ""})
    if how == "flag":
        argv += ["--lang", "zh"]
        env["LANG"] = "en_US.UTF-8"
    else:
        env["LANG"] = "zh_CN.UTF-8"
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "Ctrl-C" in line:
                break
        url = re.search(r"(http://\S+)/_emulator/stats", seen[-1])
        assert url is not None, seen
        for _ in range(100):  # the stats line comes before the server accepts requests
            try:
                httpx.get(url[1] + "/_emulator/stats", timeout=5).raise_for_status()
                break
            except httpx.TransportError:
                time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):  # else a failure here leaks to the next test
            if pipe is not None:
                pipe.close()
    assert proc.returncode == 0, err
    assert_chinese(Ran(("emulate",), how, 0, "".join(seen) + out, err))


@pytest.mark.parametrize("how", HOWS)
def test_serve(how: str, emulator: EmulatorServer, workdir: Path) -> None:
    config = workdir / f"serve-{how}.toml"
    config.write_text(
        f'base_url = "{emulator.base_url}"\n'
        '[[projects]]\nname = "main"\napi_key_env = "ZH_TEST_GOOGLE_KEY"\n'
        "[telemetry]\nlog = false\n"
        '[[gateway.tokens]]\nname = "app"\ntoken_env = "ZH_TEST_TOKEN"\n'
    )
    argv = [str(SCRIPT), "serve", "--config", str(config), "--port", "0"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GOOGLE_"))}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "LC_ALL": "",
            "LC_MESSAGES": "",
            "ZH_TEST_GOOGLE_KEY": KEY,
            "ZH_TEST_TOKEN": "zh-gateway-token",
        }
    )
    if how == "flag":
        argv += ["--lang", "zh"]
        env["LANG"] = "en_US.UTF-8"
    else:
        env["LANG"] = "zh_CN.UTF-8"
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        seen = [proc.stdout.readline(), proc.stdout.readline()]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):  # else a failure here leaks to the next test
            if pipe is not None:
                pipe.close()
    assert proc.returncode == 0, err
    assert "网关" in seen[0]
    assert_chinese(Ran(("serve",), how, 0, "".join(seen) + out, err))


@pytest.mark.parametrize("how", HOWS)
def test_click_s_own_usage_errors(how: str, prompts: Path) -> None:
    unknown = run("batch", str(prompts), "-o", "x.jsonl", "--emulate", "no-such-day", how=how)
    assert_chinese(unknown, 2)
    assert "没有场景 'no-such-day'；可用的场景名：bad-day, " in unknown.err, unknown.err
    assert_chinese(run("emulate", "--scenario", "no-such-day", how=how), 2)
    tier = run("plan", str(prompts), "--tier", "gold", how=how)
    assert_chinese(tier, 2)
    assert "错误：'--tier' 的值无效：'gold' 不是 " in tier.err, tier.err
    for args in (
        ("plan", "no-such-file.jsonl"),
        ("quota", "--no-such-flag"),
        ("emulate", "--port", "70000"),
        ("batch", str(prompts)),
    ):
        assert_chinese(run(*args, how=how), 2)


def _shape(value: object) -> object:
    """The keys of a JSON value, all the way down; leaves by their type."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(item) for item in value[:1]]
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        # A figure, or none yet: the minute window empties while the runs go on, so
        # `requests` and `reset_in` may turn 0 or null between them.
        return "figure"
    return type(value).__name__


def test_json_is_the_same_in_both_languages(prompts: Path, filled_store: str) -> None:
    def three(*args: str) -> tuple[object, object, object]:
        """The JSON in English, under --lang zh, and under LANG=zh_CN.UTF-8."""
        flag, locale = run(*args, how="flag"), run(*args, how="locale")
        english = subprocess.run(
            [str(SCRIPT), *args], capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "LANG": "en_US.UTF-8", "LC_ALL": "", "LC_MESSAGES": ""},
        )  # fmt: skip
        assert english.returncode == flag.code == locale.code, (args, flag.err)
        return json.loads(english.stdout), json.loads(flag.out), json.loads(locale.out)

    same: tuple[tuple[str, ...], ...] = (
        ("emulate", "--list-scenarios", "--json"),
        ("models", "--json"),
        ("plan", str(prompts), "--json"),
    )
    for args in same:
        english, flag, locale = three(*args)
        assert english == flag == locale, args
    # the reset times move with the clock, and a diagnosis explains itself in the
    # language asked for (its "lang" says which): the keys are the same
    alike: tuple[tuple[str, ...], ...] = (
        ("quota", "--store", filled_store, "--tier", "free", "--json"),
        ("diagnose", "503", "--json"),
    )
    for args in alike:
        english, flag, locale = three(*args)
        assert _shape(english) == _shape(flag) == _shape(locale), args
