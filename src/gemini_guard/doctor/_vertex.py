"""The checks for Vertex AI: credentials, project, location, endpoint and a test call.

Vertex AI is reached with Google Cloud credentials, not an API key: a service account's
JSON file named by GOOGLE_APPLICATION_CREDENTIALS, or the file `gcloud auth
application-default login` writes (application default credentials, ADC). The SDK
exchanges either for an OAuth token at the file's `token_uri`, then calls
`https://LOCATION-aiplatform.googleapis.com` (`https://aiplatform.googleapis.com` for
`global`) under `projects/P/locations/L`. Each of those can be missing or wrong on its
own, and each failure here says which and how to fix it, with Vertex's advice (IAM
roles, the Vertex AI API, regions and `global`, Cloud quotas), never AI Studio's.

The checks read the files themselves rather than calling `google.auth.default()`,
so they can say which file was found and what is wrong with it, and never wait for a
metadata server. Nothing secret is shown: not the private key, its id, a client
secret or a refresh token; a service account is named by its e-mail, a file by its path.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gemini_guard.diagnosis import Category, Diagnosis, diagnose, is_vertex
from gemini_guard.doctor._api import _TRANSIENT, ISOLATION_PROMPT, _explained
from gemini_guard.doctor._base import CheckResult, Status, Text, _ms, _result, _short

if TYPE_CHECKING:
    from google import genai
    from google.auth.credentials import Credentials

    from gemini_guard.clock import Clock

CREDENTIALS_ENV = "GOOGLE_APPLICATION_CREDENTIALS"
PROJECT_ENV = "GOOGLE_CLOUD_PROJECT"
LOCATION_ENV = "GOOGLE_CLOUD_LOCATION"
USE_VERTEX_ENV = "GOOGLE_GENAI_USE_VERTEXAI"
VERTEX_BASE_URL_ENV = "GOOGLE_VERTEX_BASE_URL"
VERTEX_STATUS_URL = "https://status.cloud.google.com"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
ADC_FILE = "application_default_credentials.json"
LOCATIONS_URL = "https://cloud.google.com/vertex-ai/generative-ai/docs/learn/locations"
# The fields each kind of credentials file needs before it can be exchanged for a token
# (what google-auth's from_service_account_info / from_authorized_user_info require).
_REQUIRED = {
    "service_account": ("client_email", "private_key", "token_uri"),
    "authorized_user": ("client_id", "client_secret", "refresh_token"),
}
# `global`, a multi-region (`us`, `eu`) or a region such as us-central1, europe-west4.
_LOCATION = re.compile(r"global|us|eu|[a-z]+-[a-z]+[0-9]+")
_LOGIN = "gcloud auth application-default login"
_QUOTA = {Category.RATE_LIMITED, Category.DAILY_QUOTA_EXHAUSTED, Category.NO_QUOTA}

TITLE_CREDENTIALS = Text("Credentials", "凭据")
TITLE_PROJECT = Text("Project", "项目")
TITLE_LOCATION = Text("Location", "位置")
TITLE_TEST_CALL = Text("Test call (Vertex AI)", "测试调用（Vertex AI）")


def wants_vertex(env: Mapping[str, str]) -> bool:
    """True when the environment tells google-genai to use Vertex AI, as the SDK reads it."""
    return (env.get(USE_VERTEX_ENV) or "").strip().lower() in ("true", "1")


def vertex_base_url(location: str) -> str:
    """The endpoint google-genai 3.x calls for `location`."""
    if location == "global":
        return "https://aiplatform.googleapis.com"
    if location in ("us", "eu"):
        return f"https://aiplatform.{location}.rep.googleapis.com"
    return f"https://{location}-aiplatform.googleapis.com"


def adc_path(env: Mapping[str, str]) -> Path:
    """Where gcloud writes application default credentials (CLOUDSDK_CONFIG moves it)."""
    if env.get("CLOUDSDK_CONFIG"):
        return Path(env["CLOUDSDK_CONFIG"]) / ADC_FILE
    if os.name == "nt" and env.get("APPDATA"):
        return Path(env["APPDATA"]) / "gcloud" / ADC_FILE
    home = env.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".config" / "gcloud" / ADC_FILE


def setting(given: str | None, env: Mapping[str, str], variable: str) -> tuple[str | None, str]:
    """A value and where it came from: the option (or configuration) first, then `variable`."""
    if given:
        return given, "--option"
    value = (env.get(variable) or "").strip()
    return (value or None), variable


# --- credentials ---------------------------------------------------------------------------


def check_vertex_credentials(env: Mapping[str, str]) -> tuple[CheckResult, Credentials | None]:
    """GOOGLE_APPLICATION_CREDENTIALS, else gcloud's ADC file: found, readable, complete.

    Returns the check and, when it passed, the loaded credentials for the test call.
    """
    named = (env.get(CREDENTIALS_ENV) or "").strip()
    if named:
        path, source = Path(os.path.expanduser(named)), CREDENTIALS_ENV
        source_zh = CREDENTIALS_ENV
    else:
        path, source, source_zh = adc_path(env), "gcloud ADC", "gcloud ADC"
        if not path.is_file():
            return (
                _result(
                    "credentials",
                    "fail",
                    TITLE_CREDENTIALS,
                    f"no credentials: {CREDENTIALS_ENV} is not set and there is no gcloud "
                    f"ADC file at {path}",
                    f"没有凭据：{CREDENTIALS_ENV} 未设置，{path} 也没有 gcloud ADC 文件",
                    Text(
                        f"run `{_LOGIN}`, or `export {CREDENTIALS_ENV}=/path/to/key.json` with "
                        "a service account key (on GCE, Cloud Run or GKE the attached service "
                        "account is used instead: this check does not ask the metadata server)",
                        f"运行 `{_LOGIN}`，或用服务账号密钥 "
                        f"`export {CREDENTIALS_ENV}=/path/to/key.json`"
                        "（在 GCE、Cloud Run 或 GKE 上改用所附服务账号：本检查不询问元数据服务器）",
                    ),
                ),
                None,
            )

    def bad(en: str, zh: str, fix: Text) -> tuple[CheckResult, None]:
        return (
            _result(
                "credentials",
                "fail",
                TITLE_CREDENTIALS,
                f"{source} ({path}): {en}",
                f"{source_zh}（{path}）：{zh}",
                fix,
            ),
            None,
        )

    new_key = Text(
        f"download a new JSON key for the service account (IAM → Service accounts → Keys), "
        f"or run `{_LOGIN}` and unset {CREDENTIALS_ENV}",
        f"为服务账号下载新的 JSON 密钥（IAM → 服务账号 → 密钥），"
        f"或运行 `{_LOGIN}` 并取消设置 {CREDENTIALS_ENV}",
    )
    try:
        raw = path.read_text("utf-8")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return bad(
            f"cannot be read ({reason})",
            f"无法读取（{reason}）",
            Text(
                f"point {CREDENTIALS_ENV} at an existing file this user can read",
                f"让 {CREDENTIALS_ENV} 指向当前用户可读的现有文件",
            ),
        )
    try:
        info = json.loads(raw)
    except ValueError:
        info = None
    if not isinstance(info, dict):
        return bad("is not a JSON object", "不是 JSON 对象", new_key)
    kind = str(info.get("type") or "")
    missing = [f for f in _REQUIRED.get(kind, ()) if not str(info.get(f) or "").strip()]
    if not kind:
        return bad('has no "type" field', "没有 type 字段", new_key)
    if missing:
        names = ", ".join(missing)
        return bad(f"{kind} without {names}", f"{kind} 缺少 {names}", new_key)
    if kind == "service_account" and "PRIVATE KEY-----" not in str(info["private_key"]):
        return bad("private_key is not a PEM key", "private_key 不是 PEM 格式的密钥", new_key)
    try:
        credentials = _load(kind, info, path)
    except Exception as exc:  # google-auth's errors for a file it cannot use, any kind
        why = _short(str(exc), 120)
        return bad(f"google-auth cannot load it: {why}", f"google-auth 无法加载：{why}", new_key)
    who = str(info.get("client_email") or "")
    if kind == "service_account":
        en, zh = f"service account {who}", f"服务账号 {who}"
    elif kind == "authorized_user":
        en, zh = "your gcloud user login", "你的 gcloud 用户登录"
    else:
        en, zh = f"{kind} credentials", f"{kind} 凭据"
    return (
        _result(
            "credentials",
            "ok",
            TITLE_CREDENTIALS,
            f"{en}, from {source} ({path})",
            f"{zh}，来自 {source_zh}（{path}）",
        ),
        credentials,
    )


def _load(kind: str, info: dict[str, Any], path: Path) -> Credentials:
    scopes = [CLOUD_PLATFORM_SCOPE]
    if kind == "service_account":
        from google.oauth2 import service_account

        return service_account.Credentials.from_service_account_info(info, scopes=scopes)  # type: ignore[no-untyped-call, no-any-return]
    if kind == "authorized_user":
        from google.oauth2 import credentials

        return credentials.Credentials.from_authorized_user_info(info, scopes=scopes)  # type: ignore[no-untyped-call, no-any-return]
    import google.auth

    with warnings.catch_warnings():  # its quota-project advice is not this check's news
        warnings.simplefilter("ignore")
        loaded, _ = google.auth.load_credentials_from_file(str(path), scopes=scopes)  # type: ignore[no-untyped-call]
    return loaded  # type: ignore[no-any-return]


def credentials_project(env: Mapping[str, str]) -> str | None:
    """The project_id a credentials file names, to suggest when no project is set."""
    named = (env.get(CREDENTIALS_ENV) or "").strip()
    path = Path(os.path.expanduser(named)) if named else adc_path(env)
    try:
        info = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    value = (
        info.get("project_id") or info.get("quota_project_id") if isinstance(info, dict) else None
    )
    return str(value) if value else None


# --- project and location ----------------------------------------------------------------


def check_vertex_project(
    project: str | None, source: str, *, suggestion: str | None = None
) -> CheckResult:
    if project is None:
        value = suggestion or "your-project-id"
        hint = f" (your credentials name {suggestion})" if suggestion else ""
        hint_zh = f"（凭据中的项目为 {suggestion}）" if suggestion else ""
        return _result(
            "project",
            "fail",
            TITLE_PROJECT,
            f"no project: {PROJECT_ENV} is not set and no --project was given{hint}",
            f"没有项目：{PROJECT_ENV} 未设置，也没有给出 --project{hint_zh}",
            Text(
                f"`export {PROJECT_ENV}={value}` (or --project): Vertex AI bills and "
                "counts quota per project",
                f"`export {PROJECT_ENV}={value}`（或 --project）：Vertex AI 按项目计费和计算配额",
            ),
        )
    return _result(
        "project", "ok", TITLE_PROJECT, f"{project} (from {source})", f"{project}（来自 {source}）"
    )


def check_vertex_location(location: str | None, source: str) -> CheckResult:
    if location is None:
        return _result(
            "location",
            "warn",
            TITLE_LOCATION,
            f"{LOCATION_ENV} is not set; google-genai uses global",
            f"{LOCATION_ENV} 未设置；google-genai 使用 global",
            Text(
                f"`export {LOCATION_ENV}=global` (any region with capacity) or a region such "
                "as us-central1, so every tool uses the same one",
                f"`export {LOCATION_ENV}=global`（任一有容量的区域）或 us-central1 等区域，"
                "让所有工具使用同一位置",
            ),
        )
    if not _LOCATION.fullmatch(location):
        return _result(
            "location",
            "fail",
            TITLE_LOCATION,
            f"{location!r} (from {source}) is not a Vertex AI location",
            f"{location!r}（来自 {source}）不是 Vertex AI 位置",
            Text(
                f"use global or a region such as us-central1 or europe-west4 ({LOCATIONS_URL})",
                f"使用 global 或 us-central1、europe-west4 等区域（{LOCATIONS_URL}）",
            ),
        )
    if location == "global":
        return _result(
            "location",
            "ok",
            TITLE_LOCATION,
            f"global (from {source}): served from any region with capacity",
            f"global（来自 {source}）：由任一有容量的区域提供服务",
        )
    return _result(
        "location",
        "ok",
        TITLE_LOCATION,
        f"{location} (from {source})",
        f"{location}（来自 {source}）",
    )


# --- the test call -----------------------------------------------------------------------


def _vertex_fix(d: Diagnosis, project: str, location: str, model: str) -> Text | None:
    """Vertex's own advice where the catalog's would send an AI Studio user elsewhere."""
    if d.category in _QUOTA and not is_vertex(d):
        return Text(
            f"Vertex AI refused for quota: retry with backoff, use location global (any "
            f"region with capacity) or another region, ask for more quota for {project} in "
            "the Cloud console (IAM & Admin → Quotas, service aiplatform.googleapis.com), or "
            "buy Provisioned Throughput for steady traffic",
            f"Vertex AI 因配额拒绝：带退避重试，改用 global 位置（任一有容量的区域）或其他区域，"
            f"在 Cloud 控制台为 {project} 申请更多配额（IAM 和管理 → 配额，"
            "服务 aiplatform.googleapis.com），"
            "或为稳定流量购买预配吞吐量（Provisioned Throughput）",
        )
    if d.category is Category.INVALID_API_KEY or d.http_status == 401:
        return Text(
            f"the access token was refused: run `{_LOGIN}` again, or check that the service "
            "account and its key are enabled (IAM → Service accounts)",
            f"访问令牌被拒绝：重新运行 `{_LOGIN}`，或确认服务账号及其密钥已启用（IAM → 服务账号）",
        )
    if d.category is Category.PERMISSION_DENIED:
        return Text(
            f"grant the credentials' principal the Vertex AI User role on {project} "
            f"(roles/aiplatform.user), and enable the API: "
            f"`gcloud services enable aiplatform.googleapis.com --project {project}`",
            f"为凭据的主体授予 {project} 上的 Vertex AI User 角色（roles/aiplatform.user），"
            f"并启用 API：`gcloud services enable aiplatform.googleapis.com --project {project}`",
        )
    if d.category is Category.NOT_FOUND:
        return Text(
            f"{model} is not offered in {location}, or {project} has no access to it: pick a "
            f"model and location from {LOCATIONS_URL}, or use location global",
            f"{location} 不提供 {model}，或 {project} 无权使用：从 {LOCATIONS_URL} "
            "选择模型和位置，或改用 global 位置",
        )
    if d.category in (Category.PRECONDITION, Category.PAYMENT_REQUIRED):
        return Text(
            f"link a billing account to {project}: "
            f"https://console.cloud.google.com/billing/linkedaccount?project={project}",
            f"为 {project} 关联结算账号："
            f"https://console.cloud.google.com/billing/linkedaccount?project={project}",
        )
    return None


def vertex_failure(
    name: str,
    title: Text,
    what: str,
    exc: BaseException,
    now: float,
    *,
    project: str,
    location: str,
) -> tuple[CheckResult, Diagnosis]:
    """A failed Vertex request as a line of the checklist, explained for Vertex."""
    try:
        from google.auth.exceptions import GoogleAuthError
    except ImportError:  # google-auth comes with google-genai; be safe without it
        GoogleAuthError = ()  # type: ignore[assignment, misc]
    diagnosis = diagnose(exc)
    if isinstance(exc, GoogleAuthError):  # the token exchange, before any Vertex request
        why = _short(str(exc), 120)
        result = _result(
            name,
            "fail",
            title,
            f"{what}: the credentials could not be exchanged for a token: {why}",
            f"{what}：凭据无法换取访问令牌：{why}",
            Text(
                f"the key may be deleted or disabled, or the login expired: run `{_LOGIN}` "
                "again, or download a new key for the service account",
                f"密钥可能已删除或停用，或登录已过期：重新运行 `{_LOGIN}`，或为服务账号下载新密钥",
            ),
        )
        return result, diagnosis
    headline, fix = _explained(diagnosis, now)
    own = _vertex_fix(diagnosis, project, location, what)
    if own is not None:
        message = _short(diagnosis.message, 120) or headline.en
        headline, fix = Text(message, message if diagnosis.message else headline.zh), own
    status: Status = "warn" if diagnosis.category in _TRANSIENT else "fail"
    code = f"{diagnosis.http_status} " if diagnosis.http_status else ""
    if code.strip() and code.strip() in headline.en:
        code = ""
    detail = Text(f"{what}: {code}{headline.en}", f"{what}：{code}{headline.zh}")
    return CheckResult(name, status, title, detail, fix), diagnosis


def check_vertex_call(
    client: genai.Client, model: str, *, clock: Clock, project: str, location: str
) -> tuple[CheckResult, Diagnosis | None]:
    """One one-sentence request through the SDK with vertexai=True."""
    start = clock.monotonic()
    try:
        response = client.models.generate_content(model=model, contents=ISOLATION_PROMPT)
        text = response.text or ""
    except Exception as exc:  # every failure is diagnosed, none escapes the checklist
        return vertex_failure(
            "isolation", TITLE_TEST_CALL, model, exc, clock.time(),
            project=project, location=location,
        )  # fmt: skip
    elapsed = _ms(clock.monotonic() - start)
    quote = _short(text, 60)
    return (
        _result(
            "isolation",
            "ok",
            TITLE_TEST_CALL,
            f"{model} answered in {elapsed} from {project}/{location}: {quote!r}; your "
            "credentials, project and network work",
            f"{model} 在 {elapsed} 内从 {project}/{location} 回答：{quote!r}；"
            "凭据、项目和网络均正常",
        ),
        None,
    )


def probe_vertex_models(
    client: genai.Client,
    models: Sequence[str],
    *,
    clock: Clock,
    project: str,
    location: str,
    done: Mapping[str, CheckResult],
) -> list[CheckResult]:
    """One tiny request to each configured model (Vertex lists no publisher catalog to read)."""
    results = []
    for model in models:
        name, title = f"model:{model}", Text(f"Model {model}", f"模型 {model}")
        if model in done:
            earlier = done[model]
            results.append(CheckResult(name, earlier.status, title, earlier.detail, earlier.fix))
            continue
        start = clock.monotonic()
        try:
            client.models.generate_content(model=model, contents=ISOLATION_PROMPT)
        except Exception as exc:
            result, _ = vertex_failure(
                name, title, model, exc, clock.time(), project=project, location=location
            )
            results.append(result)
            continue
        elapsed = _ms(clock.monotonic() - start)
        results.append(
            _result(name, "ok", title, f"answered in {elapsed}", f"{elapsed} 内返回应答")
        )
    return results
