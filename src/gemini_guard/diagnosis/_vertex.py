"""Vertex AI's quota errors: how to recognise them, and the advice that fits them.

The same model on Vertex AI fails differently from the Gemini API (AI Studio):
- pay-as-you-go traffic draws on a *dynamic shared quota*: no per-project RPM is
  published, and when Google's capacity for a model in a region runs short the answer
  is a bare 429 "Resource exhausted. Please try again later. Please refer to
  https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 ...", with no
  QuotaFailure and no retry delay;
- per-project quotas are named by `aiplatform.googleapis.com/...` metrics in the
  message: "Quota exceeded for aiplatform.googleapis.com/
  generate_content_requests_per_minute_per_project_per_base_model with base model: M".
Both are told apart from AI Studio's 429s by the Vertex URL or metric in the body.
The fix differs too: spread load across regions or use the `global` endpoint, buy
provisioned throughput, or ask for more quota in the Cloud console; not ai.dev.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from gemini_guard.diagnosis._explanation import Explanation
from gemini_guard.diagnosis._model import Category, Diagnosis, QuotaViolation

if TYPE_CHECKING:
    from gemini_guard.diagnosis._explanation import Ctx

__all__ = [
    "VERTEX_429_URL",
    "VERTEX_QUOTAS_URL",
    "is_vertex",
    "vertex_explanation",
    "vertex_quota_from_message",
]

VERTEX_429_URL = "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429"
VERTEX_QUOTAS_URL = "https://cloud.google.com/vertex-ai/generative-ai/docs/quotas"
VERTEX_DSQ_URL = "https://cloud.google.com/vertex-ai/generative-ai/docs/dynamic-shared-quota"
VERTEX_PT_URL = "https://cloud.google.com/vertex-ai/generative-ai/docs/provisioned-throughput"
CONSOLE_QUOTAS_URL = (
    "https://console.cloud.google.com/iam-admin/quotas?service=aiplatform.googleapis.com"
)

_MARKERS = ("cloud.google.com/vertex-ai", "aiplatform.googleapis.com")
_VERTEX_METRIC = re.compile(
    r"Quota exceeded for (?P<metric>aiplatform\.googleapis\.com/[A-Za-z0-9_./-]+?)"
    r"(?:\s+with base model:\s*(?P<model>[A-Za-z0-9._-]+?))?\.?(?:\s|$)"
)


def vertex_quota_from_message(message: str) -> tuple[QuotaViolation, ...]:
    """Violations named by a Vertex metric in the message (limit and tier unknown)."""
    found = []
    for match in _VERTEX_METRIC.finditer(message):
        metric = match.group("metric").rstrip(".")
        name = metric.lower()
        found.append(
            QuotaViolation(
                scope="day" if "per_day" in name else "minute",
                unit="tokens" if "token" in name else "requests",
                tier="paid",
                limit=None,
                model=match.group("model"),
                quota_id=None,
                metric=metric,
            )
        )
    return tuple(found)


def is_vertex(d: Diagnosis) -> bool:
    """True when the error came from Vertex AI (its docs URL or metric is in the body)."""
    if d.quota is not None and (d.quota.metric or "").startswith("aiplatform.googleapis.com/"):
        return True
    lowered = d.message.lower()
    return any(marker in lowered for marker in _MARKERS)


_QUOTA = frozenset({Category.RATE_LIMITED, Category.DAILY_QUOTA_EXHAUSTED, Category.NO_QUOTA})


def vertex_explanation(c: Ctx) -> Explanation | None:
    """Vertex's advice for a Vertex quota error; None for anything else."""
    if c.d.category not in _QUOTA or not is_vertex(c.d):
        return None
    if c.d.quota is None:
        return _shared_quota(c)
    return _project_quota(c, c.d.quota)


def _shared_quota(c: Ctx) -> Explanation:
    title = c.t(
        "Vertex AI: the shared capacity for this model in this region ran short (429)",
        "Vertex AI：该模型在此区域的共享容量不足（429）",
    )
    cause = c.t(
        "On pay-as-you-go, Vertex AI serves Gemini from a dynamic shared quota: there is no "
        "fixed per-project limit, and when everyone's demand for a model in a region exceeds "
        "the capacity there, some requests get 'Resource exhausted'. It is not your project "
        "going over a number, and more API keys or projects will not help.",
        "按量付费时，Vertex AI 通过动态共享配额提供 Gemini：没有固定的项目级上限，"
        "当某区域内所有用户对该模型的需求超过当地容量时，部分请求会收到“Resource exhausted”。"
        "这不是你的项目超过了某个数字，增加密钥或项目也无济于事。",
    )
    steps = (
        c.t(
            "Retry with exponential backoff and jitter (about 1 s, 2 s, 4 s ... up to a "
            "minute); the response carries no retry delay.",
            "使用带随机抖动的指数退避重试（约 1 秒、2 秒、4 秒……最长一分钟）；响应中没有重试延迟。",
        ),
        c.t(
            "Use the `global` endpoint (location='global'), which routes to any region with "
            "capacity, or spread requests over several regions (e.g. us-central1, us-east5, "
            "europe-west4) and fall back from one to the next.",
            "改用 `global` 端点（location='global'，全局路由到有容量的区域），"
            "或把请求分散到多个区域（如 us-central1、us-east5、europe-west4），依次回退。",
        ),
        c.t(
            "For steady traffic that must not be refused, buy Provisioned Throughput: "
            + VERTEX_PT_URL,
            "对不能被拒绝的稳定流量，购买预配吞吐量（Provisioned Throughput）：" + VERTEX_PT_URL,
        ),
        c.t(
            f"Background: {VERTEX_DSQ_URL} and {VERTEX_429_URL}",
            f"背景资料：{VERTEX_DSQ_URL} 与 {VERTEX_429_URL}",
        ),
    )
    guard = c.t(
        "retries with backoff, learns the rate the region accepts (no published limit to "
        "pace by), and falls back to the next location or model in the chain.",
        "带退避重试，从 429 中学习该区域实际接受的速率（没有公开的上限可依），"
        "并回退到链中的下一个区域或模型。",
    )
    return Explanation(c.lang, title, cause, steps, guard)


def _project_quota(c: Ctx, quota: QuotaViolation) -> Explanation:
    model = quota.model or c.t("this base model", "该基础模型")
    per = c.t("per day", "每天") if quota.scope == "day" else c.t("per minute", "每分钟")
    unit = c.t("input tokens", "输入 token") if quota.unit == "tokens" else c.t("requests", "请求")
    title = c.t(
        f"Vertex AI quota exceeded: {unit} {per} for {model}",
        f"超出 Vertex AI 配额：{model} 的{per}{unit}",
    )
    cause = c.t(
        f"Your Google Cloud project used up its Vertex AI quota ({quota.metric}) for {model} "
        "in this region. Vertex quotas count per project, per region and per base model.",
        f"你的 Google Cloud 项目在此区域用完了 {model} 的 Vertex AI 配额（{quota.metric}）。"
        "Vertex 配额按项目、区域和基础模型分别计算。",
    )
    steps = (
        c.t(
            "Retry with exponential backoff and pace requests below the quota.",
            "使用指数退避重试，并把请求速率控制在配额以下。",
        ),
        c.t(
            f"See and raise the quota in the Cloud console: {CONSOLE_QUOTAS_URL} "
            f"(quotas explained: {VERTEX_QUOTAS_URL}).",
            f"在 Cloud 控制台查看并申请提高配额：{CONSOLE_QUOTAS_URL}"
            f"（配额说明：{VERTEX_QUOTAS_URL}）。",
        ),
        c.t(
            "Send part of the traffic to another region or to `global`, where the same "
            "project has a separate quota, or buy Provisioned Throughput: " + VERTEX_PT_URL,
            "把部分流量发往其他区域或 `global`（同一项目在那里有独立配额），"
            "或购买预配吞吐量：" + VERTEX_PT_URL,
        ),
    )
    guard = c.t(
        "retries with backoff, paces later calls, and falls back to the next location or "
        "model in the chain.",
        "带退避重试，对后续调用限速，并回退到链中的下一个区域或模型。",
    )
    return Explanation(c.lang, title, cause, steps, guard)
