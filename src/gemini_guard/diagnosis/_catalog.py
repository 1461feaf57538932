"""The texts of every category, English and Chinese side by side.

One builder per category turns a Diagnosis into an `Explanation`, filling in this
case's figures: the model, the limit, the server's delay, the next Pacific-midnight
reset. Keeping both languages in one place keeps them saying the same thing.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from gemini_guard.diagnosis._explanation import Ctx, Explanation, Lang, format_seconds
from gemini_guard.diagnosis._model import Category, Diagnosis, QuotaViolation, RecentRate
from gemini_guard.diagnosis._vertex import vertex_explanation
from gemini_guard.pacific import PACIFIC, next_reset

__all__ = ["KEYS_URL", "STATUS_URL", "build", "format_seconds"]

KEYS_URL = "https://aistudio.google.com/apikey"
STATUS_URL = "https://aistudio.google.com/status"
USAGE_URL = "https://ai.dev/usage?tab=rate-limit"
RATE_LIMITS_URL = "https://ai.google.dev/gemini-api/docs/rate-limits"
REGIONS_URL = "https://ai.google.dev/gemini-api/docs/available-regions"
LIGHTER_MODELS = "gemini-2.5-flash / gemini-2.5-flash-lite"  # when the failed model is unknown


def _clock_time(moment: dt.datetime) -> str:
    offset = moment.strftime("%z")
    offset = f"{offset[:3]}:{offset[3:]}" if len(offset) == 5 else offset
    name = moment.tzname() or ""
    if name in {"UTC", ""} or name.startswith(("+", "-")):
        return f"{moment:%Y-%m-%d %H:%M} UTC{offset if offset not in {'+00:00', ''} else ''}"
    return f"{moment:%Y-%m-%d %H:%M} {name} (UTC{offset})"


def _lighter(c: Ctx) -> str:
    """Lighter models to fall back to, leaving out the one that just failed."""
    current = c.d.quota.model if c.d.quota is not None else None
    names = [m for m in ("gemini-2.5-flash", "gemini-2.5-flash-lite") if m != current]
    return " / ".join(names)


def _reset_line(c: Ctx) -> str:
    reset = next_reset(c.now)
    pt = _clock_time(dt.datetime.fromtimestamp(reset, PACIFIC))
    local = _clock_time(dt.datetime.fromtimestamp(reset).astimezone())
    wait = c.seconds(max(0.0, reset - c.now))
    return c.t(
        f"Daily quotas reset at midnight Pacific time: {pt}, which is {local} "
        f"on this machine, {wait} from now.",
        f"每日配额在太平洋时间午夜重置：{pt}，即本机时间 {local}，距现在还有 {wait}。",
    )


def _tier1_line(c: Ctx, quota: QuotaViolation) -> str | None:
    """What Tier 1 (billing enabled) allows for this model, from the shipped table."""
    if not quota.model:
        return None
    from gemini_guard.tiers import model_spec

    try:
        spec = model_spec(quota.model)
        if spec is None or "tier1" not in spec.tiers:
            return None
        field = {
            ("minute", "requests"): "rpm",
            ("minute", "tokens"): "tpm",
            ("day", "requests"): "rpd",
            ("day", "tokens"): "tpd",
        }[(quota.scope, quota.unit)]
        paid = getattr(spec.limits("tier1"), field)
        free = getattr(spec.tiers["free"], field) if "free" in spec.tiers else None
    except (KeyError, ValueError, OSError):
        return None
    per = c.t("per minute", "每分钟") if quota.scope == "minute" else c.t("per day", "每天")
    if paid is None:
        return c.t(
            f"With billing enabled (Tier 1), {quota.model} has no such {per} limit "
            "(shipped table; your project's quota page has the final word).",
            f"开通结算（Tier 1）后，{quota.model} 没有这项{per}限额"
            "（来自内置数据表，以项目配额页面为准）。",
        )
    was = c.t(f" instead of {free:,}", f"，而免费层级只有 {free:,} 个") if free is not None else ""
    return c.t(
        f"With billing enabled (Tier 1), {quota.model} allows {paid:,} {c.unit(quota)} {per}{was} "
        "(shipped table; your project's quota page has the final word).",
        f"开通结算（Tier 1）后，{quota.model} {per}可用 {paid:,} 个{c.unit(quota)}{was}"
        "（数据来自内置表，以项目配额页面为准）。",
    )


def _limit_words(c: Ctx, quota: QuotaViolation) -> str:
    per = c.t("per minute", "每分钟") if quota.scope == "minute" else c.t("per day", "每天")
    if quota.limit is None:
        return c.t(f"{c.unit(quota)} {per}", f"{per}{c.unit(quota)}数")
    return c.t(
        f"{quota.limit:,} {c.unit(quota)} {per}",
        f"{per} {quota.limit:,} 个{c.unit(quota)}",
    )


# --- quota -------------------------------------------------------------------------------


def _rate_limited(c: Ctx) -> Explanation:
    quota = c.d.quota
    delay = c.d.retry_after
    steps: list[str] = []
    if delay is not None:
        steps.append(
            c.t(
                f"Wait {c.seconds(delay)} (the delay the server asked for), then retry: "
                "the per-minute window will have moved on.",
                f"等待 {c.seconds(delay)}（服务器要求的延迟）后重试，"
                "届时每分钟的窗口已经滚动过去。",
            )
        )
    else:
        steps.append(
            c.t(
                "Retry after a short wait with exponential backoff and jitter "
                "(for example about 2 s, 4 s, 8 s).",
                "稍等后重试，并使用带随机抖动的指数退避（例如约 2 秒、4 秒、8 秒）。",
            )
        )
    far_below = _far_below_limit(c) if quota is None else None
    if far_below is not None:
        title, cause, more = far_below
        steps += more
    elif quota is None:
        title = c.t(
            "Rate limited (429 RESOURCE_EXHAUSTED) without quota details",
            "被限流（429 RESOURCE_EXHAUSTED），响应中没有配额详情",
        )
        cause = c.t(
            "The server refused the request for now but did not say which quota was hit. "
            "Usually too many requests or tokens in a short time; it is also reported on paid "
            "tiers when Google's shared capacity for a model runs short.",
            "服务器暂时拒绝了请求，但没有说明触发了哪项配额。通常是短时间内请求或 token 过多；"
            "付费层级在该模型的共享算力紧张时也会出现这种错误。",
        )
        steps.append(
            c.t(
                f"If it keeps happening, compare your traffic with the limits at {USAGE_URL}.",
                f"如果持续出现，请在 {USAGE_URL} 对照查看用量与限额。",
            )
        )
    else:
        title = c.t(
            f"Per-minute quota exceeded: {_limit_words(c, quota)} for {c.model()} "
            f"({c.tier(quota)})",
            f"超出每分钟配额：{c.model()} 的{c.tier(quota)}限额为{_limit_words(c, quota)}",
        )
        cause = c.t(
            f"Your project sent more {c.unit(quota)} to {c.model()} in the last minute than its "
            f"{c.tier(quota)} allows. Quotas count per project, not per API key: more keys "
            "from the same project do not add quota.",
            f"你的项目在过去一分钟内向 {c.model()} "
            f"发送的{c.unit(quota)}超过了{c.tier(quota)}的上限。"
            "配额按项目计算，而不是按 API 密钥：同一项目下再多的密钥也不会增加配额。",
        )
        if quota.unit == "requests" and quota.limit:
            gap = 60.0 / quota.limit
            steps.append(
                c.t(
                    f"Pace your calls: at most {quota.limit:,} per minute, one every "
                    f"{c.seconds(gap)} or more.",
                    f"控制调用节奏：每分钟最多 {quota.limit:,} "
                    f"次，即每次间隔至少 {c.seconds(gap)}。",
                )
            )
        elif quota.unit == "tokens":
            steps.append(
                c.t(
                    "Send fewer input tokens per minute: shorten prompts and history, or spread "
                    "large requests over several minutes.",
                    "减少每分钟的输入 token：精简提示词和对话历史，或把大请求分散到几分钟内发送。",
                )
            )
        tier1 = _tier1_line(c, quota) if quota.tier == "free" else None
        if tier1:
            steps.append(tier1)
    guard = c.t(
        "retries after the server's delay (capped), and paces later calls so the limit "
        "is not hit again.",
        "按服务器给出的延迟（有上限）等待后重试，并对后续调用限速，避免再次触发限额。",
    )
    if far_below is not None:
        guard = c.t(
            "retries it with backoff and jitter as a transient capacity error, and keeps "
            "pacing at the limit it knows: such a 429 lowers nothing.",
            "把它当作暂时的算力错误，带退避和随机抖动重试，"
            "并保持按已知限额限速：这种 429 不会降低限速。",
        )
    return Explanation(c.lang, title, cause, tuple(steps), guard)


_TIER_NAMES = {"free": "free tier", "tier1": "Tier 1", "tier2": "Tier 2", "tier3": "Tier 3"}
_FAR_BELOW = 0.5  # a limit shows as traffic approaches it; below half, a bare 429 is not one


def _far_below_limit(c: Ctx) -> tuple[str, str, list[str]] | None:
    """Title, cause and steps for a bare 429 that came far below the caller's limit."""
    recent = c.recent
    if recent is None or recent.limit is None or recent.requests >= _FAR_BELOW * recent.limit:
        return None
    share = 100.0 * recent.requests / recent.limit
    pct = f"{share:.1f}%" if share < 10 else f"{share:.0f}%"
    tier = _TIER_NAMES.get(recent.tier or "", "")
    limit = c.t(f"your {tier} limit" if tier else "your limit", f"{tier}限额" if tier else "限额")
    title = c.t(
        f"429 at {pct} of {limit}: not your quota (a phantom or shared-capacity 429)",
        f"429 出现在{limit}的 {pct}：不是你的配额（幻影 429 或共享算力不足）",
    )
    cause = c.t(
        f"Your project sent {recent.requests:,} requests to {c.model()} in the last minute, "
        f"{pct} of {limit} of {recent.limit:,} per minute, and the server answered "
        "429 RESOURCE_EXHAUSTED without naming a quota. A rate limit refuses only as "
        "traffic approaches it: this looks like the phantom-429 problem Google "
        "acknowledged in December 2025 (paid projects refused at a small fraction of "
        "their limits), or shared capacity for the model running short.",
        f"你的项目在过去一分钟向 {c.model()} 发送了 {recent.requests:,} 个请求，"
        f"只是{limit}（每分钟 {recent.limit:,} 次）的 {pct}，服务器却返回了不指明配额的 "
        "429 RESOURCE_EXHAUSTED。速率限制只会在流量接近上限时拒绝请求：这看起来是 Google 在 "
        "2025 年 12 月承认的“幻影 429”问题（付费项目在远低于限额时被拒绝），"
        "或该模型的共享算力不足。",
    )
    steps = [
        c.t(
            f"Check the rate-limit page ({USAGE_URL}); if your usage is far below the limit, "
            "contact Google support with the times and request ids of these 429s.",
            f"查看速率限制页面（{USAGE_URL}）；如果用量远低于限额，"
            "请带上这些 429 的时间和请求 ID 联系 Google 支持。",
        ),
        c.t(
            "Do not slow down to a lower limit: keep retrying with backoff, and fall back to "
            "another model if it persists.",
            "不要把限速降到更低：继续带退避地重试，如果持续出现就切换到其他模型。",
        ),
    ]
    return title, cause, steps


def _daily(c: Ctx) -> Explanation:
    quota = c.d.quota
    limit = _limit_words(c, quota) if quota is not None else c.t("its daily limit", "每日上限")
    tier = c.tier(quota) if quota is not None else ""
    title = c.t(
        f"Daily quota used up: {limit} for {c.model()}" + (f" ({tier})" if tier else ""),
        f"每日配额已用完：{c.model()} 的{tier}限额为{limit}",
    )
    short = (
        c.t(
            f" The response still carries a short retry delay ({c.seconds(c.d.retry_after)}); "
            "it is misleading, because every retry fails until the reset.",
            f"响应里虽然带有一个很短的重试延迟（{c.seconds(c.d.retry_after)}），但它具有误导性："
            "在重置之前，每次重试都会失败。",
        )
        if c.d.retry_after is not None
        else ""
    )
    cause = c.t(
        f"Your project has used everything its daily quota allows for {c.model()}.{short}",
        f"你的项目今天在 {c.model()} 上的每日配额已经全部用完。{short}",
    )
    steps = [
        _reset_line(c),
        c.t(
            f"Until then, switch to another model that has its own daily quota "
            f"(for example {_lighter(c)}), or use a key of another Google Cloud project.",
            f"在此之前，可以换用拥有独立每日配额的其他模型（例如 {_lighter(c)}），"
            "或使用另一个 Google Cloud 项目的密钥。",
        ),
    ]
    tier1 = _tier1_line(c, quota) if quota is not None and quota.tier == "free" else None
    steps.append(
        tier1
        or c.t(
            "Enable billing on the project in Google AI Studio (Tier 1): daily limits become "
            "much higher and you pay per token.",
            "在 Google AI Studio 中为项目开通结算（Tier "
            "1）：每日限额会大幅提高，改为按 token 付费。",
        )
    )
    guard = c.t(
        "does not retry; it falls back to the next model of the chain, or raises "
        "DailyQuotaExhausted with the reset time.",
        "不会重试；它会切换到备选链中的下一个模型，或抛出带有重置时间的 DailyQuotaExhausted。",
    )
    return Explanation(c.lang, title, cause, tuple(steps), guard)


def _no_quota(c: Ctx) -> Explanation:
    quota = c.d.quota
    tier = c.tier(quota) if quota is not None else c.t("your tier", "当前层级")
    title = c.t(
        f"No quota at all for {c.model()} on the {tier} (limit 0)",
        f"{c.model()} 在{tier}上没有任何配额（限额为 0）",
    )
    cause = c.t(
        f"The quota of {c.model()} is 0 for your project: the model is not offered on the "
        f"{tier}, or not in your region. Waiting does not help, whatever retry delay the "
        "response shows.",
        f"你的项目在 {c.model()} 上的配额为 0：该模型不向{tier}开放，或在你所在的地区不可用。"
        "无论响应里写着多长的重试延迟，等待都没有用。",
    )
    steps = (
        c.t(
            f"Use a model your tier includes, for example {_lighter(c)}.",
            f"改用当前层级包含的模型，例如 {_lighter(c)}。",
        ),
        c.t(
            f"Or enable billing on the project in Google AI Studio ({KEYS_URL}) to get a paid "
            "quota for this model.",
            f"或者在 Google AI Studio（{KEYS_URL}）为项目开通结算，获得该模型的付费配额。",
        ),
        c.t(
            f"See which models have quota for your project at {USAGE_URL}.",
            f"可在 {USAGE_URL} 查看项目在哪些模型上有配额。",
        ),
    )
    guard = c.t(
        "marks the model unusable for this project and falls back to the next model.",
        "把该模型标记为本项目不可用，并切换到下一个备选模型。",
    )
    return Explanation(c.lang, title, cause, steps, guard)


def _payment(c: Ctx) -> Explanation:
    return Explanation(
        c.lang,
        c.t("Prepaid credits are used up (402)", "预付费额度已用完（402）"),
        c.t(
            "The project pays in advance and its credit balance is depleted, so requests are "
            "refused until it is topped up. This is not a rate limit: retrying does not help.",
            "该项目采用预付费方式，余额已经耗尽，在充值之前请求都会被拒绝。"
            "这不是限流，重试没有用。",
        ),
        (
            c.t(
                "Add credits in Google AI Studio: open the project's billing page and top up.",
                "在 Google AI Studio 中打开该项目的结算页面并充值。",
            ),
            c.t(
                "Or use a key of another project that still has credit or postpaid billing.",
                "或改用另一个仍有余额或采用后付费结算的项目的密钥。",
            ),
        ),
        c.t("does not retry; the call fails at once.", "不会重试，调用立即失败。"),
    )


# --- the request ---------------------------------------------------------------------------

_TOKEN_COUNTS = re.compile(r"input token count \((\d+)\) exceeds the maximum[^(]*\((\d+)\)")


def _too_large(c: Ctx) -> Explanation:
    counts = _TOKEN_COUNTS.search(c.d.message)
    if counts:
        sent, allowed = int(counts.group(1)), int(counts.group(2))
        title = c.t(
            f"Request too large: {sent:,} input tokens, the model accepts {allowed:,}",
            f"请求过大：输入 {sent:,} 个 token，模型最多接受 {allowed:,} 个",
        )
    else:
        title = c.t("Request too large", "请求过大")
    cause = c.t(
        "The request is bigger than the model accepts (its context window, or the request "
        "size limit). The same request fails every time.",
        "请求超出了模型能接受的大小（上下文窗口或请求体大小上限），同样的请求每次都会失败。",
    )
    steps = (
        c.t(
            "Shorten the input: trim or summarise the conversation history, send only the "
            "relevant parts of documents.",
            "缩短输入：裁剪或总结对话历史，只发送文档中相关的部分。",
        ),
        c.t(
            "Count tokens before sending (client.models.count_tokens) and split big jobs.",
            "发送前先统计 token（client.models.count_tokens），把大任务拆分成多次。",
        ),
        c.t(
            "Upload large files with the Files API instead of inlining them.",
            "大文件请用 Files API 上传，不要内联在请求里。",
        ),
    )
    guard = c.t(
        "rejects such requests before sending when the model's limit is known; never retries.",
        "在已知模型上限时会在发送前拒绝这类请求；不会重试。",
    )
    return Explanation(c.lang, title, cause, steps, guard)


def _invalid_key(c: Ctx) -> Explanation:
    low = c.lowered
    make_new = c.t(
        f"Create a new key at {KEYS_URL} and put it in GEMINI_API_KEY (or pass api_key=...).",
        f"在 {KEYS_URL} 创建新密钥，并设置到 GEMINI_API_KEY 环境变量（或通过 api_key=... 传入）。",
    )
    if "leaked" in low:
        title = c.t(
            "This API key was reported as leaked and is disabled",
            "该 API 密钥被报告已泄露，已被停用",
        )
        cause = c.t(
            "Google found this key in public (a repository, a web page, an app bundle) and "
            "blocked it for good. It cannot be re-enabled.",
            "Google 在公开场合（代码仓库、网页、"
            "应用安装包等）发现了这个密钥，并将其永久停用，无法恢复。",
        )
        steps: tuple[str, ...] = (
            make_new,
            c.t(
                "Delete the leaked key, and keep keys out of code and repositories: use "
                "environment variables or a secret store, and check your git history.",
                "删除已泄露的密钥；不要把密钥写进代码或提交到仓库，改用环境变量或密钥管理服务，"
                "并检查 git 历史记录。",
            ),
        )
    elif "expired" in low:
        title = c.t("The API key has expired", "API 密钥已过期")
        cause = c.t(
            "The key was valid once but has expired (or was rotated).",
            "该密钥曾经有效，但现在已过期（或已被轮换）。",
        )
        steps = (make_new,)
    elif c.d.http_status == 401 or c.d.grpc_status == "UNAUTHENTICATED":
        title = c.t(
            "Credentials rejected (401 UNAUTHENTICATED)", "凭据被拒绝（401 UNAUTHENTICATED）"
        )
        cause = c.t(
            "The API did not accept the credentials sent: a wrong or empty key, or an OAuth "
            "token where the Gemini API expects an API key (or the reverse, for Vertex AI).",
            "API 不接受所发送的凭据：密钥错误或为空，或者在需要 API 密钥的地方发送了 OAuth 令牌"
            "（使用 Vertex AI 时则相反）。",
        )
        steps = (
            make_new,
            c.t(
                "Check which credentials your client sends: google-genai reads GOOGLE_API_KEY "
                "before GEMINI_API_KEY when both are set.",
                "检查客户端实际发送的凭据：两者都设置时，google-genai 会优先读取 GOOGLE_API_KEY，"
                "而不是 GEMINI_API_KEY。",
            ),
        )
    else:
        title = c.t("The API key is not valid", "API 密钥无效")
        cause = c.t(
            "The key sent with the request does not exist or is malformed (a typo, a truncated "
            "copy, stray quotes or spaces, or a key that was deleted).",
            "请求中携带的密钥不存在或格式不对（拼写错误、复制不完整、多了引号或空格，或密钥已被删除）。",
        )
        steps = (
            c.t(
                "Check the value your program really uses: print its length and first 4 "
                "characters (never the whole key). google-genai reads GOOGLE_API_KEY before "
                "GEMINI_API_KEY when both are set.",
                "检查程序实际使用的值：只打印它的长度和前 4 个字符（切勿打印完整密钥）。"
                "两者都设置时，google-genai 会优先读取 GOOGLE_API_KEY。",
            ),
            make_new,
        )
    guard = c.t(
        "does not retry; the key is wrong, not the moment.",
        "不会重试：问题出在密钥本身，而不是时机。",
    )
    return Explanation(c.lang, title, cause, steps, guard)


def _precondition(c: Ctx) -> Explanation:
    low = c.lowered
    if "location" in low or "country" in low or "region" in low:
        title = c.t(
            "Not available from your location (FAILED_PRECONDITION)",
            "你所在的地区无法使用（FAILED_PRECONDITION）",
        )
        cause = c.t(
            "The Gemini API decides by where the request comes from (the calling IP address). "
            "Your location is not supported, or the free tier is not offered there.",
            "Gemini API 根据请求的来源（调用方的 IP 地址）判断地区。你所在的地区不受支持，"
            "或者该地区不提供免费层级。",
        )
        steps: tuple[str, ...] = (
            c.t(
                f"Check the list of available regions: {REGIONS_URL}.",
                f"查看受支持的地区列表：{REGIONS_URL}。",
            ),
            c.t(
                "Call from a server in a supported region. Proxies and CDN edge nodes count "
                "too: an exit node in an unsupported region (Hong Kong, for example) causes this.",
                "从受支持地区的服务器发起调用。代理和 CDN 边缘节点同样算数："
                "出口节点位于不受支持的地区（例如香港）也会触发此错误。",
            ),
            c.t(
                "Where only the free tier is unavailable, enable billing on the project in "
                "Google AI Studio.",
                "如果只是免费层级不可用，请在 Google AI Studio 中为项目开通结算。",
            ),
        )
    else:
        title = c.t(
            "A precondition is not met (FAILED_PRECONDITION)",
            "前置条件不满足（FAILED_PRECONDITION）",
        )
        cause = c.t(
            "The project is not in a state that allows this call, most often billing or "
            "region: " + c.d.message,
            "项目当前的状态不允许这次调用，最常见的原因是结算或地区：" + c.d.message,
        )
        steps = (
            c.t(
                "Check the project's billing in Google AI Studio and enable it if needed.",
                "在 Google AI Studio 中检查项目的结算状态，必要时开通结算。",
            ),
            c.t(
                f"Check that you call from a supported region: {REGIONS_URL}.",
                f"确认调用来自受支持的地区：{REGIONS_URL}。",
            ),
        )
    guard = c.t("does not retry; the project must change first.", "不会重试；需要先修改项目设置。")
    return Explanation(c.lang, title, cause, steps, guard)


def _permission(c: Ctx) -> Explanation:
    low = c.lowered
    if "suspended" in low:
        title = c.t("The key or its project is suspended", "密钥或其所属项目已被停用")
        cause = c.t(
            "Google suspended this API key (its 'consumer'), usually after abuse was "
            "detected or the key was exposed.",
            "Google 停用了该 API 密钥（即其“consumer”），通常是检测到滥用或密钥被泄露之后。",
        )
        steps: tuple[str, ...] = (
            c.t(
                f"Create a new key at {KEYS_URL}; if new keys are suspended too, the "
                "project is: check the project owner's e-mail from Google.",
                f"在 {KEYS_URL} 创建新密钥；如果新密钥也被停用，说明整个项目被停用了，"
                "请查看项目所有者收到的 Google 邮件。",
            ),
            c.t(
                "Keep keys server-side; never ship them in web pages or apps.",
                "密钥只放在服务器端，不要放进网页或客户端应用。",
            ),
        )
    elif "service_disabled" in low or "has not been used in project" in low or "is disabled" in low:
        title = c.t(
            "The Generative Language API is disabled for this project",
            "该项目未启用 Generative Language API",
        )
        cause = c.t(
            "The key belongs to a Google Cloud project where the API is not enabled.",
            "该密钥所属的 Google Cloud 项目没有启用这个 API。",
        )
        steps = (
            c.t(
                "Enable 'Generative Language API' in the Google Cloud console for the "
                f"project, or create a key in Google AI Studio ({KEYS_URL}), which enables it.",
                "在 Google Cloud 控制台为该项目启用“Generative Language API”，或直接在 Google AI "
                f"Studio（{KEYS_URL}）创建密钥，它会自动启用该 API。",
            ),
        )
    elif "unregistered callers" in low:
        title = c.t("No API key was sent", "请求中没有携带 API 密钥")
        cause = c.t(
            "The request reached the API without any key or credentials.",
            "请求到达 API 时没有携带任何密钥或凭据。",
        )
        steps = (
            c.t(
                "Set GEMINI_API_KEY in the environment of the process that calls the API, or "
                "pass api_key=... to genai.Client.",
                "在调用 API 的进程环境中设置 GEMINI_API_KEY，或向 genai.Client 传入 api_key=...。",
            ),
        )
    else:
        title = c.t("Permission denied (403)", "没有权限（403）")
        cause = c.t(
            "The key is valid but may not do this: a resource of another project (a tuned "
            "model, a file, a cache), or key restrictions (allowed APIs, referrers, IP "
            "addresses) that block the call.",
            "密钥本身有效，但没有权限执行这个操作：可能访问了其他项目的资源（微调模型、文件、缓存），"
            "或者密钥的限制条件（允许的 API、来源网址、IP 地址）拦截了这次调用。",
        )
        steps = (
            c.t(
                "Check the key's restrictions in the Google Cloud console (APIs & Services → "
                "Credentials).",
                "在 Google Cloud 控制台（API 和服务 → 凭据）中检查密钥的限制条件。",
            ),
            c.t(
                "Use a key of the project that owns the resource.",
                "使用资源所属项目的密钥。",
            ),
        )
    guard = c.t("does not retry.", "不会重试。")
    return Explanation(c.lang, title, cause, steps, guard)


def _not_found(c: Ctx) -> Explanation:
    return Explanation(
        c.lang,
        c.t(
            "Not found (404): the model or resource does not exist here",
            "未找到（404）：模型或资源不存在",
        ),
        c.t(
            "The model name is wrong, retired, or not served by this API version; or a file, "
            "cache or batch has expired or belongs to another project.",
            "模型名称错误、已下线，或当前 API 版本不提供该模型；"
            "也可能是文件、缓存或批处理任务已过期，"
            "或属于其他项目。",
        ),
        (
            c.t(
                "List the models your key can use: client.models.list() (or "
                "`gemini-guard doctor`), and copy the exact name.",
                "列出你的密钥可用的模型：client.models.list()（或 `gemini-guard doctor`），"
                "并使用准确的名称。",
            ),
            c.t(
                "Preview and older models are retired regularly: move to a current model "
                "such as gemini-2.5-flash.",
                "预览版和旧模型会定期下线：请迁移到当前模型，例如 gemini-2.5-flash。",
            ),
            c.t(
                "Some models and features are only on v1beta: set the API version if needed.",
                "部分模型和功能只在 v1beta 上提供：必要时请指定 API 版本。",
            ),
        ),
        c.t(
            "does not retry; it may fall back to the next model.",
            "不会重试；可能切换到下一个备选模型。",
        ),
    )


THOUGHT_SIGNATURES_URL = "https://ai.google.dev/gemini-api/docs/thought-signatures"


def _missing_thought_signature(c: Ctx) -> Explanation:
    return Explanation(
        c.lang,
        c.t(
            "A function call in the history lacks its thought_signature (400)",
            "历史记录中的函数调用缺少 thought_signature（400）",
        ),
        c.t(
            "Gemini 3 models return a thoughtSignature with each function call part and "
            "require it back, unchanged, when that call is sent again in the conversation "
            "history. The history you sent rebuilt the functionCall part without it (the "
            "message names the function and its position).",
            "Gemini 3 模型会在每个函数调用部分附带 thoughtSignature，"
            "并要求在对话历史中再次发送该调用时原样带回。"
            "你发送的历史重建了 functionCall 部分却丢掉了它（错误信息里给出了函数名和位置）。",
        ),
        (
            c.t(
                "Send the model's previous turn back as it came (response.candidates[0].content), "
                "parts and thought_signature included; the SDKs' chat sessions do this for you.",
                "把模型上一轮的内容原样发回（response.candidates[0].content），包括各个部分和 "
                "thought_signature；使用 SDK 的 chat 会话会自动做到这一点。",
            ),
            c.t(
                "If you store history yourself (a database, another provider's format, an "
                "OpenAI-compatible proxy), keep thought_signature next to each function call "
                f"and replay it. See {THOUGHT_SIGNATURES_URL}.",
                "如果你自己保存对话历史（数据库、其他服务商的格式、OpenAI 兼容代理），"
                "请为每个函数调用保存 thought_signature 并在重放时带上。"
                f"参见 {THOUGHT_SIGNATURES_URL}。",
            ),
        ),
        c.t("does not retry: the request must change.", "不会重试：需要修改请求。"),
    )


def _bad_request(c: Ctx) -> Explanation:
    if "thought_signature" in c.lowered:
        return _missing_thought_signature(c)
    detail = c.d.message[:300] if c.d.message else ""
    return Explanation(
        c.lang,
        c.t("Invalid request (400)", "请求无效（400）"),
        c.t(
            "The API rejected the request itself; the same request always fails. "
            + (f"It said: {detail}" if detail else ""),
            "API 拒绝了请求本身；同样的请求每次都会失败。"
            + (f"服务器说明：{detail}" if detail else ""),
        ),
        (
            c.t(
                "Fix the field the message names. Common ones: temperature 0.0–2.0, topP "
                "0–1, candidateCount 1–8, a response schema the API does not support.",
                "修正错误信息中指出的字段。常见问题：temperature "
                "须在 0.0–2.0 之间，topP 在 0–1 之间，"
                "candidateCount 在 1–8 之间，或使用了 API 不支持的 response schema。",
            ),
            c.t(
                "Check the field names: the REST API uses camelCase (generationConfig); "
                "'Unknown name' means a misspelt or misplaced field.",
                "检查字段名：REST API 使用驼峰命名（generationConfig）；"
                "“Unknown name”表示字段名拼错或放错了位置。",
            ),
        ),
        c.t("does not retry.", "不会重试。"),
    )


# --- the service -----------------------------------------------------------------------------


def _wait_step(c: Ctx) -> str:
    if c.d.retry_after is not None:
        return c.t(
            f"Retry after {c.seconds(c.d.retry_after)} (the delay the server asked for).",
            f"在 {c.seconds(c.d.retry_after)} 后重试（服务器要求的延迟）。",
        )
    return c.t(
        "Retry with exponential backoff and jitter: a few seconds first, then longer.",
        "使用带随机抖动的指数退避重试：先等几秒，再逐步加长。",
    )


def _status_step(c: Ctx) -> str:
    return c.t(f"Check the service status: {STATUS_URL}.", f"查看服务状态：{STATUS_URL}。")


_SERVICE_GUARD = (
    "retries with jittered backoff, then falls back to a lighter model; a circuit breaker "
    "pauses a model that keeps failing.",
    "使用带抖动的退避重试，然后切换到更轻量的模型；对持续失败的模型，熔断器会暂停调用。",
)


def _overloaded(c: Ctx) -> Explanation:
    return Explanation(
        c.lang,
        c.t("The model is overloaded (503 UNAVAILABLE)", "模型过载（503 UNAVAILABLE）"),
        c.t(
            "Google is short of capacity for this model right now. It is not your quota and "
            "not your request; it passes, usually within seconds to minutes.",
            "Google 目前在该模型上的算力不足。"
            "这与你的配额和请求内容无关，通常几秒到几分钟后就会恢复。",
        ),
        (
            _wait_step(c),
            c.t(
                f"Fall back to a lighter model ({LIGHTER_MODELS}): they are overloaded less often.",
                f"切换到更轻量的模型（{LIGHTER_MODELS}），它们较少出现过载。",
            ),
            _status_step(c),
        ),
        c.t(*_SERVICE_GUARD),
    )


def _cancelled(c: Ctx) -> Explanation:
    return Explanation(
        c.lang,
        c.t(
            "Cancelled on Google's side (499 CANCELLED)",
            "请求在 Google 一侧被取消（499 CANCELLED）",
        ),
        c.t(
            "The service cancelled the request while it was working on it; under heavy load "
            "the backend gives up on requests this way (reason backendError). Your client did "
            "not cancel it, and the request itself is fine.",
            "服务在处理过程中取消了这个请求；在高负载时后端会以这种方式放弃请求（reason 为 "
            "backendError）。这不是客户端取消的，请求本身也没有问题。",
        ),
        (
            _wait_step(c),
            c.t(
                f"If it keeps happening, use a lighter model ({LIGHTER_MODELS}) for a while.",
                f"如果持续出现，暂时改用更轻量的模型（{LIGHTER_MODELS}）。",
            ),
            _status_step(c),
        ),
        c.t(*_SERVICE_GUARD),
    )


def _server_error(c: Ctx) -> Explanation:
    if c.d.http_status == 499 or c.d.grpc_status == "CANCELLED":
        return _cancelled(c)
    not_impl = c.d.http_status == 501
    return Explanation(
        c.lang,
        c.t(
            f"Server error ({c.d.http_status or 500} {c.d.grpc_status or 'INTERNAL'})",
            f"服务器内部错误（{c.d.http_status or 500} {c.d.grpc_status or 'INTERNAL'}）",
        ),
        c.t(
            "Something failed inside Google's service. Most are transient; one that repeats "
            "for the same request is often caused by a very long input or output.",
            "Google 服务内部出错。大多数是暂时性的；"
            "如果同一个请求反复出错，往往是输入或输出过长导致的。",
        )
        + (
            c.t(
                " 501 means the method is not implemented: do not retry.",
                " 501 表示该方法未实现：不要重试。",
            )
            if not_impl
            else ""
        ),
        (
            _wait_step(c),
            c.t(
                "If the same request keeps failing, shorten the input or the thinking budget, "
                "or try another model.",
                "如果同一个请求持续失败，请缩短输入或降低 thinking budget，或换一个模型。",
            ),
            _status_step(c),
        ),
        c.t(*_SERVICE_GUARD),
    )


def _deadline(c: Ctx) -> Explanation:
    return Explanation(
        c.lang,
        c.t(
            f"The server gave up waiting ({c.d.http_status or 504} DEADLINE_EXCEEDED)",
            f"服务器等待超时（{c.d.http_status or 504} DEADLINE_EXCEEDED）",
        ),
        c.t(
            "The model did not finish within the server's deadline: a long input, a long "
            "output or a lot of thinking, or a busy service.",
            "模型没能在服务器的时限内完成：输入过长、输出过长、思考过多，或服务繁忙。",
        ),
        (
            _wait_step(c),
            c.t(
                "Stream the response (generate_content_stream), shorten the input, or lower "
                "the thinking budget.",
                "改用流式响应（generate_content_stream），缩短输入，或降低 thinking budget。",
            ),
            c.t(
                "Give the client a longer timeout: HttpOptions(timeout=...) in milliseconds.",
                "为客户端设置更长的超时：HttpOptions(timeout=...)，单位为毫秒。",
            ),
        ),
        c.t(*_SERVICE_GUARD),
    )


def _bad_gateway(c: Ctx) -> Explanation:
    return Explanation(
        c.lang,
        c.t("Bad gateway (502)", "网关错误（502）"),
        c.t(
            "A proxy or Google's front end got no valid answer from the server behind it. "
            "An HTML page instead of a JSON error comes from a proxy on the way.",
            "代理或 Google 的前端没有从后端服务器拿到有效响应。"
            "如果返回的是 HTML 页面而不是 JSON 错误，"
            "说明它来自途中的某个代理。",
        ),
        (
            _wait_step(c),
            c.t(
                "If you call through a proxy or gateway, check it and its logs.",
                "如果经由代理或网关调用，请检查它及其日志。",
            ),
            _status_step(c),
        ),
        c.t(*_SERVICE_GUARD),
    )


def _timeout(c: Ctx) -> Explanation:
    return Explanation(
        c.lang,
        c.t("Timed out: no answer within the client's timeout", "超时：在客户端时限内没有收到响应"),
        c.t(
            "The client stopped waiting before the API answered: a slow generation, a "
            "timeout set too short, or a slow or blocked network path.",
            "客户端在 API 响应之前就停止了等待：可能是生成较慢、"
            "超时设置过短，或网络路径缓慢或受阻。",
        ),
        (
            c.t("Retry with backoff.", "使用退避策略重试。"),
            c.t(
                "Raise the timeout for long generations (google-genai: HttpOptions(timeout=...) "
                "in milliseconds), or stream the response.",
                "对较长的生成任务提高超时（google-genai：HttpOptions(timeout=...)，单位为毫秒），"
                "或改用流式响应。",
            ),
            c.t(
                "Check the network path to generativelanguage.googleapis.com (proxy, firewall).",
                "检查到 generativelanguage.googleapis.com 的网络路径（代理、防火墙）。",
            ),
        ),
        c.t(*_SERVICE_GUARD),
    )


def _network(c: Ctx) -> Explanation:
    return Explanation(
        c.lang,
        c.t("Network failure: no HTTP answer", "网络故障：没有收到 HTTP 响应"),
        c.t(
            "The connection failed before any answer: reset, refused, a DNS failure or a TLS "
            "error.",
            "在收到任何响应之前连接就失败了：连接被重置或拒绝、DNS 解析失败，或 TLS 错误。",
        ),
        (
            c.t(
                "Retry with backoff; resets are usually transient.",
                "使用退避策略重试；连接重置通常是暂时性的。",
            ),
            c.t(
                "Check that generativelanguage.googleapis.com resolves and is reachable from "
                "this machine (proxy settings, firewall, VPN).",
                "确认本机可以解析并访问 "
                "generativelanguage.googleapis.com（代理设置、防火墙、VPN）。",
            ),
        ),
        c.t(*_SERVICE_GUARD),
    )


def _unknown(c: Ctx) -> Explanation:
    return Explanation(
        c.lang,
        c.t("Not recognised as a Gemini API error", "无法识别为 Gemini API 错误"),
        c.t(
            "Nothing in it says which Gemini error this is: no status code, no error body, "
            "no known exception.",
            "其中没有可以判断错误类型的信息：没有状态码、没有错误响应体，也不是已知的异常。",
        ),
        (
            c.t(
                "Pass the whole error: the line with the status code and the JSON body, or "
                "the exception object itself.",
                "请提供完整的错误：包含状态码和 JSON 响应体的那一行，或异常对象本身。",
            ),
            c.t(
                "See `gemini-guard diagnose --table` for the errors it knows.",
                "运行 `gemini-guard diagnose --table` 查看已知的错误类型。",
            ),
        ),
        c.t("does not retry an error it does not understand.", "不会重试无法识别的错误。"),
    )


BUILDERS: dict[Category, Callable[[Ctx], Explanation]] = {
    Category.RATE_LIMITED: _rate_limited,
    Category.DAILY_QUOTA_EXHAUSTED: _daily,
    Category.NO_QUOTA: _no_quota,
    Category.PAYMENT_REQUIRED: _payment,
    Category.REQUEST_TOO_LARGE: _too_large,
    Category.INVALID_API_KEY: _invalid_key,
    Category.PRECONDITION: _precondition,
    Category.PERMISSION_DENIED: _permission,
    Category.NOT_FOUND: _not_found,
    Category.BAD_REQUEST: _bad_request,
    Category.OVERLOADED: _overloaded,
    Category.SERVER_ERROR: _server_error,
    Category.DEADLINE_EXCEEDED: _deadline,
    Category.BAD_GATEWAY: _bad_gateway,
    Category.TIMEOUT: _timeout,
    Category.NETWORK: _network,
    Category.UNKNOWN: _unknown,
}


def build(
    diagnosis: Diagnosis, lang: Lang, *, now: float, recent: RecentRate | None = None
) -> Explanation:
    """The explanation of `diagnosis` in `lang`, dated by `now` (wall epoch seconds);
    `recent`: the caller's own rate when it came, if known."""
    ctx = Ctx(diagnosis, lang, now, recent)
    vertex = vertex_explanation(ctx)
    if vertex is not None:
        return vertex
    builder = BUILDERS.get(diagnosis.category)
    if builder is None:
        from gemini_guard.diagnosis._catalog_quiet import QUIET_BUILDERS

        builder = QUIET_BUILDERS[diagnosis.category]
    return builder(ctx)
