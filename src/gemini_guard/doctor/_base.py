"""The doctor's vocabulary: a check's result, its texts in two languages, the options,
and the small helpers every area of checks shares (timeouts, redacted URLs).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

from gemini_guard.secrets import redact

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
DEFAULT_STATUS_URL = "https://aistudio.google.com/status"
# The isolation test's model: generally available (not a preview), cheap, and the one
# most likely to have capacity, so its failure points at the key or project.
ISOLATION_MODEL = "gemini-2.5-flash"

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
    # Vertex AI instead of the Gemini API: Google Cloud credentials, a project and a
    # location (None: GOOGLE_CLOUD_PROJECT / GOOGLE_CLOUD_LOCATION); base_url is then
    # the Vertex endpoint (see doctor.vertex_base_url).
    vertex: bool = False
    project: str | None = None
    location: str | None = None


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


def _skipped(name: str, title: Text, why: Text) -> CheckResult:
    return CheckResult(name, "skip", title, Text(f"skipped: {why.en}", f"已跳过：{why.zh}"))
