"""The doctor's checks: is this machine, key and project able to call Gemini, and if not, why.

Each check is a function returning a `CheckResult` (status ok / warn / fail / skip, a
detail and a concrete fix, in English and Chinese). `run_doctor` runs them in order,
skipping the ones whose prerequisite failed, so one root cause counts as one failure.
The order follows the troubleshooting method: local setup first (key, SDK), then the
path to the endpoint (DNS, TCP, TLS, HTTP), then the isolation test - one minimal
request to a stable model, which tells "my code" from "my key or project" from
"Google's side" - then the models this app is configured to use.

Every network call has a short timeout; time is read only through the injected Clock.
API keys are never printed: `redact_key` shows the first and last four characters.
"""

from __future__ import annotations

import importlib.metadata
import os
import queue
import re
import socket
import sqlite3
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import httpx

from gemini_guard.diagnosis import Category, Diagnosis, diagnose, explanation
from gemini_guard.secrets import redact

if TYPE_CHECKING:
    from google import genai

    from gemini_guard.clock import Clock

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_STATUS_URL",
    "ISOLATION_MODEL",
    "OLDEST_KNOWN_GOOD_SDK",
    "CheckResult",
    "DoctorOptions",
    "KeyChoice",
    "Status",
    "Text",
    "check_api_key",
    "check_endpoint",
    "check_isolation",
    "check_models",
    "check_sdk_version",
    "check_status_page",
    "check_store",
    "check_tier",
    "failures",
    "find_api_key",
    "redact_key",
    "run_doctor",
]

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
DEFAULT_STATUS_URL = "https://aistudio.google.com/status"
# The isolation test's model: generally available (not a preview), cheap, and the one
# most likely to have capacity, so its failure points at the key or project.
ISOLATION_MODEL = "gemini-2.5-flash"
ISOLATION_PROMPT = "Reply with one short sentence to confirm you are working."
# gemini-guard depends on google-genai >= 3.0 and is tested against 3.6.1: 3.x is the
# line whose default API version is v1, whose errors.APIError carries the parsed body
# (`details`) that diagnose() reads, and whose HttpOptions(base_url=...) the emulator
# and the gateway rely on. Older releases are not tested and are not safe to assume.
OLDEST_KNOWN_GOOD_SDK = "3.0.0"
TESTED_SDK = "3.6.1"
KEY_ENV_VARS = ("GOOGLE_API_KEY", "GEMINI_API_KEY")  # in google-genai's order of precedence
_KEY_FORMAT = re.compile(r"AIza[0-9A-Za-z_\-]{35}")

Status = Literal["ok", "warn", "fail", "skip"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Text:
    """One message in English and Chinese."""

    en: str
    zh: str

    def in_(self, lang: str) -> str:
        return self.zh if lang.lower().startswith("zh") else self.en


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One line of the checklist: what was checked, how it went, and how to fix it."""

    name: str  # stable id: api_key, sdk_version, endpoint, isolation, models, model:<m>, ...
    status: Status
    title: Text
    detail: Text
    fix: Text | None = None

    def to_dict(self, lang: str = "en") -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "title": self.title.in_(lang),
            "detail": self.detail.in_(lang),
            "fix": self.fix.in_(lang) if self.fix else None,
        }


@dataclass(frozen=True, slots=True)
class DoctorOptions:
    """What to check. Timeouts are seconds per network step."""

    base_url: str = DEFAULT_BASE_URL
    models: tuple[str, ...] = ()
    isolation_model: str = ISOLATION_MODEL
    status_url: str = DEFAULT_STATUS_URL
    store: str | None = None
    tier: str | None = None  # the tier the configuration claims, compared with what is seen
    timeout: float = 5.0
    probe_models: bool = True  # send one tiny request to each configured model
    # The variable a configuration names (projects[0].api_key_env): Guard.from_config
    # reads only that one. None: google-genai's own lookup (GOOGLE_API_KEY, GEMINI_API_KEY).
    key_env: str | None = None


def failures(results: Iterable[CheckResult]) -> int:
    """How many checks failed: the doctor's exit code."""
    return sum(1 for r in results if r.status == "fail")


def _result(
    name: str, status: Status, title: Text, en: str, zh: str, fix: Text | None = None
) -> CheckResult:
    return CheckResult(name, status, title, Text(en, zh), fix)


def _with_timeout(fn: Callable[[], T], timeout: float) -> T:
    """`fn()` in a daemon thread, given up on after `timeout` seconds (for getaddrinfo).

    A daemon thread, not an executor: a resolver stuck offline must not hold up the
    process at exit, which an executor's worker would.
    """
    box: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)

    def work() -> None:
        try:
            box.put((True, fn()))
        except BaseException as exc:
            box.put((False, exc))

    threading.Thread(target=work, name="gemini-guard-doctor-dns", daemon=True).start()
    try:
        ok, value = box.get(timeout=timeout)
    except queue.Empty:
        raise TimeoutError(f"no answer within {timeout:g} s") from None
    if ok:
        return cast(T, value)
    raise value


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _short(text: str, limit: int = 160) -> str:
    text = redact(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- API key -------------------------------------------------------------------------------

TITLE_KEY = Text("API key", "API 密钥")


@dataclass(frozen=True, slots=True)
class KeyChoice:
    """The key google-genai would use, where it comes from, and whether another was ignored."""

    key: str | None = field(repr=False)
    source: str | None  # the environment variable it came from
    shadowed: str | None = None  # the variable set to a different key, and ignored
    wanted: str | None = None  # the one variable a configuration names, if any


def find_api_key(env: Mapping[str, str], *, key_env: str | None = None) -> KeyChoice:
    """The key google-genai 3.6.1 picks: GOOGLE_API_KEY first, then GEMINI_API_KEY.

    Its `_api_client.get_env_api_key` returns `GOOGLE_API_KEY or GEMINI_API_KEY` and
    logs a warning when both are set; an empty value counts as unset. With `key_env`
    (a configuration's `api_key_env`), that variable alone is read, as the Guard does.
    """
    if key_env is not None:
        value = env.get(key_env) or None
        return KeyChoice(value, key_env if value else None, wanted=key_env)
    values = {name: env.get(name) or None for name in KEY_ENV_VARS}
    source = next((name for name in KEY_ENV_VARS if values[name]), None)
    if source is None:
        return KeyChoice(None, None)
    key = values[source]
    shadowed = next(
        (n for n in KEY_ENV_VARS if n != source and values[n] and values[n] != key), None
    )
    return KeyChoice(key, source, shadowed)


def redact_key(key: str) -> str:
    """`AIza…XyZ1`: enough to tell two keys apart, never enough to use one."""
    if len(key) < 12:
        return f"…({len(key)} characters)"
    return f"{key[:4]}…{key[-4:]}"


def _with_length(key: str, shown: str, *, zh: bool = False) -> str:
    """The redacted key and its length, once (a short key's redaction is its length)."""
    if "characters)" in shown:
        return shown
    return f"{shown}，{len(key)} 个字符" if zh else f"{shown}, {len(key)} characters"


def check_api_key(choice: KeyChoice) -> CheckResult:
    if choice.key is None or choice.source is None:
        variable = choice.wanted or "GEMINI_API_KEY"
        missing = (
            Text(
                f"no API key: {variable} (the configuration's api_key_env) is not set",
                f"没有 API 密钥：{variable}（配置中的 api_key_env）未设置",
            )
            if choice.wanted
            else Text(
                "no API key: neither GEMINI_API_KEY nor GOOGLE_API_KEY is set",
                "没有 API 密钥：GEMINI_API_KEY 和 GOOGLE_API_KEY 都未设置",
            )
        )
        return CheckResult(
            "api_key",
            "fail",
            TITLE_KEY,
            missing,
            Text(
                "create a key at https://aistudio.google.com/apikey, then "
                f"`export {variable}=...` in the shell that runs your program",
                "在 https://aistudio.google.com/apikey 创建密钥，然后在运行程序的 shell 中 "
                f"`export {variable}=...`",
            ),
        )
    key, shown = choice.key, redact_key(choice.key)
    if choice.shadowed is not None:
        return _result(
            "api_key",
            "warn",
            TITLE_KEY,
            f"{choice.source} ({shown}) and {choice.shadowed} are both set and differ; "
            f"google-genai uses {choice.source}",
            f"{choice.source}（{shown}）和 {choice.shadowed} 都已设置且不同；"
            f"google-genai 使用 {choice.source}",
            Text(
                f"unset the one you do not mean (`unset {choice.shadowed}` or "
                f"`unset {choice.source}`) so every tool uses the same key",
                f"取消不需要的那个（`unset {choice.shadowed}` 或 `unset {choice.source}`），"
                "让所有工具使用同一个密钥",
            ),
        )
    if key != key.strip() or key[:1] in "\"'" or key[-1:] in "\"'":
        return _result(
            "api_key",
            "fail",
            TITLE_KEY,
            f"{choice.source} ({shown}) has surrounding spaces, a newline or quotes",
            f"{choice.source}（{shown}）首尾带有空格、换行或引号",
            Text(
                f"set {choice.source} to the bare key, without quotes or whitespace",
                f"把 {choice.source} 设为不带引号和空白的纯密钥",
            ),
        )
    if not _KEY_FORMAT.fullmatch(key):
        return _result(
            "api_key",
            "warn",
            TITLE_KEY,
            f"{choice.source} ({_with_length(key, shown)}) does not look like a Gemini "
            "API key (AIza followed by 35 characters)",
            f"{choice.source}（{_with_length(key, shown, zh=True)}）看起来不像 Gemini API 密钥"
            "（AIza 加 35 个字符）",
            Text(
                "copy the whole key again from https://aistudio.google.com/apikey "
                "(ignore this if a gateway hands out its own tokens)",
                "从 https://aistudio.google.com/apikey 重新完整复制密钥"
                "（若网关使用自有令牌可忽略）",
            ),
        )
    return _result(
        "api_key",
        "ok",
        TITLE_KEY,
        f"{choice.source} is set ({shown}); the format looks right",
        f"已设置 {choice.source}（{shown}）；格式正确",
    )


# --- SDK version ---------------------------------------------------------------------------

TITLE_SDK = Text("google-genai version", "google-genai 版本")


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:3]:
        digits = re.match(r"\d+", piece)
        parts.append(int(digits.group()) if digits else 0)
    return tuple(parts)


def _installed(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_sdk_version(
    installed: str | None = None, *, legacy: str | None = None, probe: bool = True
) -> CheckResult:
    """google-genai against the oldest known good release; the legacy SDK flagged.

    `installed` and `legacy` (google-generativeai's version) default to what is
    installed when `probe` is true.
    """
    if probe:
        installed = installed or _installed("google-genai")
        legacy = legacy or _installed("google-generativeai")
    upgrade = Text(
        f'pip install -U "google-genai>={OLDEST_KNOWN_GOOD_SDK},<4"',
        f'pip install -U "google-genai>={OLDEST_KNOWN_GOOD_SDK},<4"',
    )
    if installed is None:
        return _result(
            "sdk_version",
            "fail",
            TITLE_SDK,
            "google-genai is not installed",
            "未安装 google-genai",
            upgrade,
        )
    version = _version_tuple(installed)
    if version < _version_tuple(OLDEST_KNOWN_GOOD_SDK):
        return _result(
            "sdk_version",
            "fail",
            TITLE_SDK,
            f"google-genai {installed} is older than {OLDEST_KNOWN_GOOD_SDK}, the oldest "
            f"release gemini-guard supports (tested with {TESTED_SDK})",
            f"google-genai {installed} 早于 gemini-guard 支持的最低版本 {OLDEST_KNOWN_GOOD_SDK}"
            f"（测试版本 {TESTED_SDK}）",
            upgrade,
        )
    if version[0] > _version_tuple(TESTED_SDK)[0]:
        return _result(
            "sdk_version",
            "warn",
            TITLE_SDK,
            f"google-genai {installed} is a newer major release than gemini-guard was tested "
            f"with ({TESTED_SDK})",
            f"google-genai {installed} 是比测试版本（{TESTED_SDK}）更新的大版本",
            Text('pin "google-genai<4" if anything breaks', '如有问题可固定 "google-genai<4"'),
        )
    if legacy is not None:
        return _result(
            "sdk_version",
            "warn",
            TITLE_SDK,
            f"google-genai {installed} is fine, but the deprecated google-generativeai "
            f"{legacy} is installed too; code importing google.generativeai gets no fixes",
            f"google-genai {installed} 没问题，但同时装有已弃用的 google-generativeai {legacy}；"
            "导入 google.generativeai 的代码不会再得到修复",
            Text(
                "move that code to `from google import genai`, then "
                "`pip uninstall google-generativeai`",
                "把这些代码改为 `from google import genai`，"
                "然后 `pip uninstall google-generativeai`",
            ),
        )
    return _result(
        "sdk_version",
        "ok",
        TITLE_SDK,
        f"google-genai {installed} (oldest known good: {OLDEST_KNOWN_GOOD_SDK})",
        f"google-genai {installed}（最低可用版本：{OLDEST_KNOWN_GOOD_SDK}）",
    )


# --- endpoint ------------------------------------------------------------------------------

TITLE_ENDPOINT = Text("Endpoint", "接口地址")


def _safe_url(url: str) -> str:
    """`url` without user info or query (which may hold a password or a key)."""
    parts = urlsplit(url)
    if not parts.netloc:
        # sqlite:///relative and sqlite:////absolute: the slashes are the path's meaning.
        return (
            f"{parts.scheme}://{url.split('://', 1)[1].partition('?')[0]}" if "://" in url else url
        )
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def check_endpoint(base_url: str, *, timeout: float, clock: Clock) -> CheckResult:
    """DNS, TCP, TLS (for https) and HTTP to `base_url`; the first layer that fails is named."""
    shown = _safe_url(base_url)
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return _result(
            "endpoint",
            "fail",
            TITLE_ENDPOINT,
            f"{shown!r} is not an http(s) URL",
            f"{shown!r} 不是 http(s) 地址",
            Text(f"use a URL like {DEFAULT_BASE_URL}", f"请使用类似 {DEFAULT_BASE_URL} 的地址"),
        )
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    steps: list[str] = []

    def failed(layer: str, error: object, fix: Text) -> CheckResult:
        done = "; ".join(steps)
        prefix = f"{done}; " if done else ""
        return _result(
            "endpoint",
            "fail",
            TITLE_ENDPOINT,
            f"{prefix}{layer} failed for {shown}: {_short(str(error))}",
            f"{prefix}{shown} 的 {layer} 失败：{_short(str(error))}",
            fix,
        )

    start = clock.monotonic()
    try:
        infos = _with_timeout(
            lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout
        )
    except OSError as exc:  # socket.gaierror, or our TimeoutError
        return failed(
            "DNS",
            str(exc) or f"no answer within {timeout:g} s",
            Text(
                f"check the host name and your DNS; offline machines cannot resolve {host} "
                "(point --base-url or GOOGLE_GEMINI_BASE_URL at a reachable gateway)",
                f"检查主机名和 DNS；离线机器无法解析 {host}"
                "（可用 --base-url 或 GOOGLE_GEMINI_BASE_URL 指向可达的网关）",
            ),
        )
    family, _, _, _, address = infos[0]
    steps.append(f"DNS {host} → {address[0]}")
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(address)
    except OSError as exc:
        sock.close()
        return failed(
            "TCP",
            exc,
            Text(
                f"nothing accepts connections on {address[0]}:{port}: check firewalls and "
                "proxies (HTTPS_PROXY), or start the gateway/emulator this URL points to",
                f"{address[0]}:{port} 无法连接：检查防火墙和代理（HTTPS_PROXY），"
                "或启动该地址对应的网关/模拟器",
            ),
        )
    steps.append(f"TCP :{port} {_ms(clock.monotonic() - start)}")
    try:
        if parts.scheme == "https":
            context = ssl.create_default_context()
            with context.wrap_socket(sock, server_hostname=host) as tls:
                steps.append(f"TLS {tls.version()}")
        else:
            sock.close()
    except (OSError, ssl.SSLError) as exc:
        sock.close()
        return failed(
            "TLS",
            exc,
            Text(
                "a proxy or antivirus may be intercepting TLS: add its CA certificate to "
                "SSL_CERT_FILE, or check the machine's date and time",
                "代理或杀毒软件可能在拦截 TLS：把它的 CA 证书加入 SSL_CERT_FILE，或检查系统时间",
            ),
        )
    # Asked without a key, a Gemini API answers this path 400/401/403 (or 200); a 404 means
    # the URL reaches a web server that is not one (a wrong path or port).
    probe = base_url.rstrip("/") + "/v1beta/models"
    try:
        response = httpx.get(probe, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        return failed(
            "HTTP",
            exc,
            Text(
                "the server accepts connections but does not answer HTTP: check the URL's "
                "scheme and port",
                "服务器接受连接但不响应 HTTP：检查地址的协议和端口",
            ),
        )
    steps.append(f"HTTP {response.status_code} for /v1beta/models")
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    via = f" (HTTPS_PROXY is set: {_safe_url(proxy)})" if proxy else ""
    if response.status_code == 404 or response.status_code >= 500:
        return _result(
            "endpoint",
            "warn" if response.status_code >= 500 else "fail",
            TITLE_ENDPOINT,
            f"{shown}: " + "; ".join(steps) + via + ": the server answers, but not as the "
            "Gemini API does",
            f"{shown}：" + "; ".join(steps) + via + "：服务器有响应，但不像 Gemini API",
            Text(
                f"check the base URL: the Gemini API is {DEFAULT_BASE_URL} (no path); a "
                "gateway or the emulator is its root URL, e.g. http://127.0.0.1:8080",
                f"检查基础地址：Gemini API 为 {DEFAULT_BASE_URL}（不带路径）；网关或模拟器"
                "用其根地址，例如 http://127.0.0.1:8080",
            ),
        )
    return _result(
        "endpoint",
        "ok",
        TITLE_ENDPOINT,
        f"{shown}: " + "; ".join(steps) + via,
        f"{shown}：" + "; ".join(steps) + via,
    )


# --- the isolation test and model probes ------------------------------------------------------

TITLE_ISOLATION = Text("Isolation test", "隔离测试")
TITLE_MODELS = Text("Models list", "模型列表")

# How each failure category reads in the checklist: a failure of the setup ("fail"),
# or a condition of the moment that the app's retries and fallback absorb ("warn").
_TRANSIENT = {
    Category.RATE_LIMITED,
    Category.OVERLOADED,
    Category.SERVER_ERROR,
    Category.DEADLINE_EXCEEDED,
    Category.BAD_GATEWAY,
}

# Isolation failures that mean the key or project is refused (or the path is down):
# every further request would fail the same way, so the model checks are skipped.
_KEY_REFUSED = {
    Category.INVALID_API_KEY,
    Category.PRECONDITION,
    Category.PERMISSION_DENIED,
    Category.PAYMENT_REQUIRED,
    Category.NO_QUOTA,
    Category.NETWORK,
    Category.TIMEOUT,
}


def _explained(diagnosis: Diagnosis, now: float) -> tuple[Text, Text]:
    """(headline, fix) of a diagnosis in both languages, from diagnose()'s own texts."""
    en, zh = explanation(diagnosis, "en", now=now), explanation(diagnosis, "zh", now=now)

    def steps(exp: Any) -> str:
        return " ".join(f"{i}. {s}" for i, s in enumerate(exp.steps, 1)) or exp.cause

    return Text(en.title, zh.title), Text(steps(en), steps(zh))


def _failure_result(
    name: str, title: Text, what: str, exc: BaseException, now: float
) -> tuple[CheckResult, Diagnosis]:
    diagnosis = diagnose(exc)
    headline, fix = _explained(diagnosis, now)
    status: Status = "warn" if diagnosis.category in _TRANSIENT else "fail"
    code = f"{diagnosis.http_status} " if diagnosis.http_status else ""
    if code.strip() and code.strip() in headline.en:
        code = ""  # the headline already names the status
    result = CheckResult(
        name,
        status,
        title,
        Text(f"{what}: {code}{headline.en}", f"{what}：{code}{headline.zh}"),
        fix,
    )
    return result, diagnosis


def _generate(client: genai.Client, model: str) -> str:
    response = client.models.generate_content(model=model, contents=ISOLATION_PROMPT)
    return response.text or ""


def check_isolation(
    client: genai.Client, model: str, *, clock: Clock
) -> tuple[CheckResult, Diagnosis | None]:
    """One minimal request to a stable model: does the key, the project and the path work?"""
    start = clock.monotonic()
    try:
        text = _generate(client, model)
    except Exception as exc:  # every failure is diagnosed, none escapes the checklist
        return _failure_result("isolation", TITLE_ISOLATION, model, exc, clock.time())
    elapsed = _ms(clock.monotonic() - start)
    quote = _short(text, 60)
    return (
        _result(
            "isolation",
            "ok",
            TITLE_ISOLATION,
            f"{model} answered in {elapsed}: {quote!r}; your key, project and network work",
            f"{model} 在 {elapsed} 内回答：{quote!r}；密钥、项目和网络均正常",
        ),
        None,
    )


def check_models(
    client: genai.Client,
    configured: Sequence[str],
    *,
    clock: Clock,
    probe: bool = True,
    already_probed: Mapping[str, CheckResult] | None = None,
) -> tuple[list[CheckResult], list[Diagnosis]]:
    """models.list, then for each configured model: is it listed, and does it answer?"""
    from gemini_guard.validation import ModelInfo, check_request

    diagnoses: list[Diagnosis] = []
    try:
        listed = {info.name: info for info in map(ModelInfo.from_api, client.models.list())}
    except Exception as exc:
        result, diagnosis = _failure_result(
            "models", TITLE_MODELS, "models.list", exc, clock.time()
        )
        return [result], [diagnosis]
    generative = sorted(name for name, info in listed.items() if info.can_generate)
    results = [
        _result(
            "models",
            "ok",
            TITLE_MODELS,
            f"{len(listed)} models listed, {len(generative)} can generateContent",
            f"列出 {len(listed)} 个模型，其中 {len(generative)} 个支持 generateContent",
        )
    ]
    for model in configured:
        name = f"model:{model}"
        title = Text(f"Model {model}", f"模型 {model}")
        problems = [
            p
            for p in check_request(model, "x", None, catalog=list(listed.values()))
            if p.path == "model" and p.is_error
        ]
        if problems:
            problem = problems[0]
            hint = problem.suggestion
            fix = Text(
                f"use {hint} in your configuration" if hint else "pick a model from the list",
                f"在配置中改用 {hint}" if hint else "从模型列表中选择一个模型",
            )
            results.append(
                CheckResult(name, "fail", title, Text(problem.message, problem.message_zh), fix)
            )
            continue
        if already_probed and model in already_probed:
            earlier = already_probed[model]
            results.append(replace(earlier, name=name, title=title))
            continue
        if not probe:
            results.append(
                _result(name, "ok", title, "listed (not probed)", "在列表中（未试调用）")
            )
            continue
        start = clock.monotonic()
        try:
            _generate(client, model)
        except Exception as exc:
            result, diagnosis = _failure_result(name, title, model, exc, clock.time())
            results.append(result)
            diagnoses.append(diagnosis)
            continue
        elapsed = _ms(clock.monotonic() - start)
        results.append(
            _result(
                name,
                "ok",
                title,
                f"listed, and answered in {elapsed}",
                f"在列表中，{elapsed} 内返回应答",
            )
        )
    return results, diagnoses


# --- tier ----------------------------------------------------------------------------------

TITLE_TIER = Text("Tier", "层级")


def check_tier(diagnoses: Iterable[Diagnosis], configured: str | None) -> CheckResult:
    """The tier the API's quota ids reveal (…-FreeTier / paid), against the configured one."""
    if configured == "auto":  # the Guard's default: it learns the tier, it claims none
        configured = None
    seen = [d.quota for d in diagnoses if d.quota is not None]
    if not seen:
        claim = f" (configured: {configured})" if configured else ""
        claim_zh = f"（配置为 {configured}）" if configured else ""
        return _result(
            "tier",
            "skip",
            TITLE_TIER,
            f"not determined: no quota error was seen{claim}; a 429's quota id names the tier",
            f"无法确定：未出现配额错误{claim_zh}；429 错误中的配额 ID 会标明层级",
        )
    quota = seen[0]
    evidence = quota.quota_id or quota.metric or "quota error"
    seen_free = quota.tier == "free"
    if configured is not None and (configured == "free") != seen_free:
        fix = (
            Text(
                "the key's project is on the free tier: link a billing account to that "
                "project in Google AI Studio, or use a key of the billed project",
                "该密钥所属项目是免费层级：在 Google AI Studio 为该项目关联结算账号，"
                "或改用已结算项目的密钥",
            )
            if seen_free
            else Text(
                "the project is billed: set tier to its paid tier (tier1, tier2 or tier3) "
                "to use its higher limits",
                "该项目已开通结算：把 tier 设为对应的付费层级（tier1、tier2 或 tier3）"
                "以使用更高限额",
            )
        )
        return _result(
            "tier",
            "warn",
            TITLE_TIER,
            f"configured as {configured}, but the API says {quota.tier} ({evidence})",
            f"配置为 {configured}，但 API 显示为 {quota.tier}（{evidence}）",
            fix,
        )
    return _result(
        "tier",
        "ok",
        TITLE_TIER,
        f"{quota.tier} tier ({evidence})",
        f"{'免费' if seen_free else '付费'}层级（{evidence}）",
    )


# --- store ---------------------------------------------------------------------------------

TITLE_STORE = Text("Store", "状态存储")


def check_store(url: str | None, *, timeout: float) -> CheckResult:
    """The configured state store answers: memory://, sqlite:///path (writable), redis://."""
    if url is None:
        return _result(
            "store",
            "skip",
            TITLE_STORE,
            "none configured: state lives in memory, per process",
            "未配置：状态保存在各进程的内存中",
        )
    shown = _safe_url(url) if "://" in url else url
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "memory":
        return _result(
            "store",
            "ok",
            TITLE_STORE,
            "memory:// (one process; not shared)",
            "memory://（单进程，不共享）",
        )
    if scheme == "sqlite":
        return _check_sqlite(url, shown, timeout)
    if scheme in ("redis", "rediss"):
        return _check_redis(url, shown, timeout)
    return _result(
        "store",
        "fail",
        TITLE_STORE,
        f"unknown store URL {shown!r}",
        f"无法识别的存储地址 {shown!r}",
        Text(
            "use memory://, sqlite:///path/to/state.db or redis://host:6379/0",
            "请使用 memory://、sqlite:///path/to/state.db 或 redis://host:6379/0",
        ),
    )


def _check_sqlite(url: str, shown: str, timeout: float) -> CheckResult:
    # The quota store's convention: sqlite:///relative, sqlite:////absolute, ~ expanded.
    raw = url.split("://", 1)[1].partition("?")[0]
    if not raw.startswith("/") or raw in {"/", "/:memory:"} or raw.endswith("/"):
        return _result(
            "store",
            "fail",
            TITLE_STORE,
            f"{shown} names no database file",
            f"{shown} 没有指定数据库文件",
            Text(
                "use sqlite:///relative/path.db or sqlite:////absolute/path.db",
                "请使用 sqlite:///relative/path.db 或 sqlite:////absolute/path.db",
            ),
        )
    path = Path(os.path.expanduser(raw[1:]))
    fix = Text(
        f"create the directory {path.parent} and make it writable by this user",
        f"创建目录 {path.parent} 并确保当前用户可写",
    )
    if not path.exists():
        if path.parent.is_dir() and os.access(path.parent, os.W_OK):
            return _result(
                "store",
                "ok",
                TITLE_STORE,
                f"{shown}: will be created (directory writable)",
                f"{shown}：将自动创建（目录可写）",
            )
        return _result(
            "store",
            "fail",
            TITLE_STORE,
            f"{shown}: directory {path.parent} is missing or not writable",
            f"{shown}：目录 {path.parent} 不存在或不可写",
            fix,
        )
    try:
        connection = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")  # takes the write lock, changes nothing
            connection.execute("ROLLBACK")
        finally:
            connection.close()
    except sqlite3.Error as exc:
        return _result(
            "store",
            "fail",
            TITLE_STORE,
            f"{shown}: cannot write: {exc}",
            f"{shown}：无法写入：{exc}",
            fix,
        )
    return _result("store", "ok", TITLE_STORE, f"{shown}: writable", f"{shown}：可写")


def _check_redis(url: str, shown: str, timeout: float) -> CheckResult:
    try:
        import redis
    except ImportError:
        return _result(
            "store",
            "fail",
            TITLE_STORE,
            f"{shown}: the redis package is not installed",
            f"{shown}：未安装 redis 包",
            Text('pip install "gemini-guard[redis]"', 'pip install "gemini-guard[redis]"'),
        )
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        client.ping()
    except redis.RedisError as exc:
        return _result(
            "store",
            "fail",
            TITLE_STORE,
            f"{shown}: PING failed: {_short(str(exc))}",
            f"{shown}：PING 失败：{_short(str(exc))}",
            Text(
                "start redis-server or fix host, port and password in the URL",
                "启动 redis-server，或修正地址中的主机、端口和密码",
            ),
        )
    finally:
        client.close()
    return _result("store", "ok", TITLE_STORE, f"{shown}: PING ok", f"{shown}：PING 正常")


# --- status page ---------------------------------------------------------------------------

TITLE_STATUS = Text("Status page", "状态页")


def check_status_page(url: str, *, timeout: float) -> CheckResult:
    """Reachability of the service status page; unreachable is a warning (offline machines)."""
    shown = _safe_url(url)
    look = Text(
        f"open {shown} in a browser for current incidents", f"在浏览器打开 {shown} 查看当前故障"
    )
    try:
        response = httpx.get(url, timeout=timeout, follow_redirects=True)
    except httpx.HTTPError as exc:
        return _result(
            "status_page",
            "warn",
            TITLE_STATUS,
            f"could not reach {shown} ({type(exc).__name__}); this machine may be offline",
            f"无法访问 {shown}（{type(exc).__name__}）；本机可能处于离线状态",
            look,
        )
    if response.status_code >= 400:
        return _result(
            "status_page",
            "warn",
            TITLE_STATUS,
            f"{shown} answered HTTP {response.status_code}",
            f"{shown} 返回 HTTP {response.status_code}",
            look,
        )
    return _result(
        "status_page",
        "ok",
        TITLE_STATUS,
        f"{shown} reachable (HTTP {response.status_code}); check it for incidents",
        f"{shown} 可访问（HTTP {response.status_code}）；可在此查看故障信息",
    )


# --- the whole checklist -------------------------------------------------------------------


def _skipped(name: str, title: Text, why: Text) -> CheckResult:
    return CheckResult(name, "skip", title, Text(f"skipped: {why.en}", f"已跳过：{why.zh}"))


def _client(key: str, options: DoctorOptions) -> genai.Client:
    from google import genai
    from google.genai import types

    return genai.Client(
        api_key=key,
        http_options=types.HttpOptions(
            base_url=options.base_url, timeout=max(1, int(options.timeout * 1000))
        ),
    )


def _api_checks(
    client: genai.Client, options: DoctorOptions, results: list[CheckResult], clock: Clock
) -> list[Diagnosis]:
    """The isolation test, then the models; appends to `results`, returns the diagnoses."""
    diagnoses: list[Diagnosis] = []
    isolation, diagnosis = check_isolation(client, options.isolation_model, clock=clock)
    results.append(isolation)
    if diagnosis is not None:
        diagnoses.append(diagnosis)
    if diagnosis is not None and diagnosis.category in _KEY_REFUSED:
        # The key or project is refused: every further request would say the same.
        why = Text("the isolation test failed", "隔离测试失败")
        results.append(_skipped("models", TITLE_MODELS, why))
    else:
        model_results, seen = check_models(
            client,
            options.models,
            clock=clock,
            probe=options.probe_models,
            already_probed={options.isolation_model: isolation},
        )
        results += model_results
        diagnoses += seen
    return diagnoses


def run_doctor(
    options: DoctorOptions,
    *,
    env: Mapping[str, str],
    clock: Clock,
    client_factory: Callable[[str, DoctorOptions], genai.Client] = _client,
) -> list[CheckResult]:
    """Every check, in order; a check whose prerequisite failed is skipped, not failed."""
    choice = find_api_key(env, key_env=options.key_env)
    results = [check_api_key(choice), check_sdk_version()]
    endpoint = check_endpoint(options.base_url, timeout=options.timeout, clock=clock)
    results.append(endpoint)

    diagnoses: list[Diagnosis] = []
    no_key = Text("no usable API key", "没有可用的 API 密钥")
    no_path = Text("the endpoint is unreachable", "接口地址不可达")
    if choice.key is None or endpoint.status == "fail":
        why = no_key if choice.key is None else no_path
        results.append(_skipped("isolation", TITLE_ISOLATION, why))
        results.append(_skipped("models", TITLE_MODELS, why))
    else:
        client = client_factory(choice.key, options)
        try:
            diagnoses += _api_checks(client, options, results, clock)
        finally:
            client.close()
    results.append(check_tier(diagnoses, options.tier))
    results.append(check_store(options.store, timeout=options.timeout))
    results.append(check_status_page(options.status_url, timeout=options.timeout))
    return results
