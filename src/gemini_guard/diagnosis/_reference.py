"""Reference material for the CLI: the shipped sample errors and the quick reference table."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources

from gemini_guard.diagnosis._diagnose import diagnose_http
from gemini_guard.diagnosis._explanation import Lang
from gemini_guard.diagnosis._model import Diagnosis

__all__ = ["QUICK_TABLE", "Row", "Sample", "load_samples", "variants_of"]


@dataclass(frozen=True, slots=True)
class Sample:
    """One shipped error: what it is called, and the answer the API gave."""

    name: str
    demo: bool
    label_en: str
    label_zh: str
    status: int
    body: object

    def label(self, lang: Lang) -> str:
        return self.label_zh if lang == "zh" else self.label_en

    def diagnosis(self) -> Diagnosis:
        return diagnose_http(self.status, self.body)  # type: ignore[arg-type]


@functools.cache
def load_samples() -> tuple[Sample, ...]:
    """Every error body in data/sample_errors.json."""
    text = resources.files("gemini_guard").joinpath("data/sample_errors.json").read_text("utf-8")
    return tuple(
        Sample(
            name=raw["name"],
            demo=bool(raw.get("demo", False)),
            label_en=raw["label"]["en"],
            label_zh=raw["label"]["zh"],
            status=int(raw["status"]),
            body=raw["body"],
        )
        for raw in json.loads(text)["samples"]
    )


def variants_of(status: int) -> tuple[Sample, ...]:
    """The shipped samples answered with `status`: the usual variants of that code."""
    return tuple(sample for sample in load_samples() if sample.status == status)


@dataclass(frozen=True, slots=True)
class Row:
    code: str
    grpc: str
    cause_en: str
    cause_zh: str
    fix_en: str
    fix_zh: str

    def cause(self, lang: Lang) -> str:
        return self.cause_zh if lang == "zh" else self.cause_en

    def fix(self, lang: Lang) -> str:
        return self.fix_zh if lang == "zh" else self.fix_en


QUICK_TABLE: tuple[Row, ...] = (
    Row(
        "400",
        "INVALID_ARGUMENT",
        "Malformed request, bad field value, wrong key "
        "(API_KEY_INVALID), input over the context window",
        "请求格式错误、字段取值无效、密钥错误（API_KEY_INVALID）、输入超出上下文窗口",
        "Fix the request or the key; never retry as is",
        "修正请求或密钥；原样重试没有用",
    ),
    Row(
        "400",
        "FAILED_PRECONDITION",
        "Region not supported, or free tier not offered in your country",
        "所在地区不受支持，或所在国家不提供免费层级",
        "Call from a supported region; enable billing",
        "从受支持地区调用；开通结算",
    ),
    Row(
        "401",
        "UNAUTHENTICATED",
        "Credentials rejected (wrong kind of credential)",
        "凭据被拒绝（凭据类型不对）",
        "Use a Gemini API key from AI Studio",
        "使用 AI Studio 创建的 Gemini API 密钥",
    ),
    Row(
        "402",
        "RESOURCE_EXHAUSTED",
        "Prepaid credits depleted",
        "预付费额度已用完",
        "Top up credits in AI Studio",
        "在 AI Studio 中充值",
    ),
    Row(
        "403",
        "PERMISSION_DENIED",
        "Key leaked/suspended, no key sent, key restrictions, another project's resource",
        "密钥泄露或被停用、未携带密钥、密钥限制、访问其他项目的资源",
        "New key; check key restrictions and the project",
        "创建新密钥；检查密钥限制和所属项目",
    ),
    Row(
        "404",
        "NOT_FOUND",
        "Wrong or retired model name, wrong API version, expired file",
        "模型名称错误或已下线、API 版本不对、文件已过期",
        "List models and use an exact current name",
        "列出可用模型并使用准确的当前名称",
    ),
    Row(
        "408",
        "-",
        "Request timed out on the way",
        "请求在途中超时",
        "Retry with backoff",
        "退避重试",
    ),
    Row(
        "429",
        "RESOURCE_EXHAUSTED",
        "Per-minute quota (RPM/TPM): retryable after the server's delay",
        "每分钟配额（RPM/TPM）：按服务器给出的延迟后可重试",
        "Wait retryDelay; pace requests; Tier 1 raises limits",
        "等待 retryDelay；控制请求节奏；Tier 1 提高限额",
    ),
    Row(
        "429",
        "RESOURCE_EXHAUSTED",
        "Per-day quota (RPD): not retryable until midnight Pacific",
        "每日配额（RPD）：太平洋时间午夜前重试无用",
        "Fall back to another model; wait for the reset; enable billing",
        "切换到其他模型；等待重置；开通结算",
    ),
    Row(
        "429",
        "RESOURCE_EXHAUSTED",
        "limit: 0: the model is not on your tier or in your region",
        "limit: 0：当前层级或地区不包含该模型",
        "Use another model or enable billing",
        "换用其他模型或开通结算",
    ),
    Row(
        "500",
        "INTERNAL",
        "Error inside Google's service; sometimes a very long input",
        "Google 服务内部错误；有时由超长输入引起",
        "Retry with backoff; shorten input; another model",
        "退避重试；缩短输入；换用其他模型",
    ),
    Row(
        "502",
        "-",
        "Bad gateway (often an HTML page from a proxy)",
        "网关错误（常为代理返回的 HTML 页面）",
        "Retry with backoff; check your proxy",
        "退避重试；检查代理",
    ),
    Row(
        "503",
        "UNAVAILABLE",
        "Model overloaded: Google is short of capacity",
        "模型过载：Google 算力不足",
        "Retry with backoff; fall back to a lighter model; status page",
        "退避重试；切换到更轻量的模型；查看状态页",
    ),
    Row(
        "504",
        "DEADLINE_EXCEEDED",
        "The server's deadline passed before the model finished",
        "模型完成前服务器已超时",
        "Retry; stream; shorten input; raise the client timeout",
        "重试；改用流式；缩短输入；提高客户端超时",
    ),
    Row(
        "-",
        "-",
        "Client timeout, connection reset, DNS or TLS failure",
        "客户端超时、连接重置、DNS 或 TLS 失败",
        "Retry with backoff; check the network path",
        "退避重试；检查网络路径",
    ),
)
