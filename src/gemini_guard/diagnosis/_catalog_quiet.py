"""The texts of the quiet failures (a 200 without usable output), English and Chinese.

Kept apart from `_catalog` (the HTTP errors) because these describe a response, not
a refusal: what the finish or block reason means and what to change in the request.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from gemini_guard.diagnosis._explanation import Ctx, Explanation
from gemini_guard.diagnosis._model import Category

__all__ = ["QUIET_BUILDERS"]

SAFETY_URL = "https://ai.google.dev/gemini-api/docs/safety-settings"
THINKING_URL = "https://ai.google.dev/gemini-api/docs/thinking"
_THOUGHTS = re.compile(r"thoughtsTokenCount (\d+)")


def _prompt_blocked(c: Ctx) -> Explanation:
    reason = c.d.reason or "BLOCKED"
    return Explanation(
        c.lang,
        c.t(f"The prompt was blocked ({reason})", f"提示词被拦截（{reason}）"),
        c.t(
            "The API refused to answer this input: promptFeedback.blockReason is set and "
            "there is no candidate. Sending the same input again is blocked again.",
            "API 拒绝回答这段输入：响应中设置了 promptFeedback.blockReason，且没有任何候选结果。"
            "原样重发同样会被拦截。",
        ),
        (
            c.t(
                "Rephrase or remove the part of the prompt (or of the conversation history, "
                "or an attached file) that the filter flagged.",
                "改写或删除被过滤器标记的提示词内容（也可能在对话历史或附件中）。",
            ),
            c.t(
                "For SAFETY blocks, adjust safety_settings where your use allows it: "
                f"{SAFETY_URL}. PROHIBITED_CONTENT and BLOCKLIST cannot be turned off.",
                f"如果是 SAFETY 拦截，在用途允许的情况下调整 safety_settings：{SAFETY_URL}。"
                "PROHIBITED_CONTENT 和 BLOCKLIST 无法关闭。",
            ),
        ),
        c.t(
            "does not retry: the same input is blocked again.",
            "不会重试：同样的输入会再次被拦截。",
        ),
    )


def _response_blocked(c: Ctx) -> Explanation:
    reason = c.d.reason or "SAFETY"
    if reason == "RECITATION" or reason.endswith("_RECITATION"):
        cause = c.t(
            "The answer was stopped because it recited training data (for example a long "
            "quotation of published text or code) too closely.",
            "回答因为过于接近地复述了训练数据（例如大段引用已发表的文字或代码）而被中止。",
        )
        fix = c.t(
            "Ask for a summary or an answer in the model's own words instead of verbatim "
            "text; a higher temperature can also help.",
            "请求概括或用模型自己的话回答，而不是逐字内容；适当提高 temperature 也可能有帮助。",
        )
    else:
        cause = c.t(
            f"The model started answering but a filter stopped the candidate "
            f"(finishReason {reason}); its text is withheld.",
            f"模型已经开始回答，但过滤器中止了该候选结果（finishReason {reason}），"
            "其文本不会返回。",
        )
        fix = c.t(
            f"Rephrase the request; for SAFETY, adjust safety_settings where your use allows "
            f"it ({SAFETY_URL}). PROHIBITED_CONTENT, BLOCKLIST and SPII cannot be turned off.",
            f"改写请求；如果是 SAFETY，在用途允许的情况下调整 safety_settings（{SAFETY_URL}）。"
            "PROHIBITED_CONTENT、BLOCKLIST 和 SPII 无法关闭。",
        )
    return Explanation(
        c.lang,
        c.t(f"The answer was blocked ({reason})", f"回答被拦截（{reason}）"),
        cause,
        (
            fix,
            c.t(
                "Check safetyRatings in the response to see which category was flagged.",
                "查看响应中的 safetyRatings，确认是哪个类别被标记。",
            ),
        ),
        c.t(
            "does not retry the same input; it raises so that you can change the request.",
            "不会用同样的输入重试；它会抛出错误，以便你修改请求。",
        ),
    )


def _malformed_call(c: Ctx) -> Explanation:
    return Explanation(
        c.lang,
        c.t(
            f"The model wrote an invalid function call ({c.d.reason or 'MALFORMED_FUNCTION_CALL'})",
            f"模型生成的函数调用无效（{c.d.reason or 'MALFORMED_FUNCTION_CALL'}）",
        ),
        c.t(
            "The model tried to call one of your tools but produced arguments the API could "
            "not parse or that do not fit the declaration; the response has no usable output. "
            "It is often transient.",
            "模型尝试调用你的某个工具，但生成的参数无法解析或与声明不符，响应中没有可用的输出。"
            "这种情况常常是暂时的。",
        ),
        (
            c.t("Retry the same request once or twice.", "原样重试一两次。"),
            c.t(
                "Simplify the function declarations: fewer parameters, flat objects, clear "
                "descriptions, enums instead of free text, and only the tools this turn needs.",
                "简化函数声明：减少参数、使用扁平结构、写清楚描述、用枚举代替自由文本，"
                "并且只提供本轮需要的工具。",
            ),
            c.t(
                "Lower the temperature, or set tool_config function_calling_config mode to "
                "AUTO instead of ANY.",
                "降低 temperature，或把 tool_config 的 function_calling_config 模式"
                "设为 AUTO 而不是 ANY。",
            ),
        ),
        c.t(
            "retries, then falls back to the next model.",
            "先重试，然后切换到下一个备选模型。",
        ),
    )


def _empty(c: Ctx) -> Explanation:
    return Explanation(
        c.lang,
        c.t("The response is empty", "响应为空"),
        c.t(
            "The API answered 200 but without usable output: no candidate, or a candidate "
            "without text although it finished normally. It is usually transient.",
            "API 返回了 200，但没有可用的输出：没有候选结果，或者候选结果正常结束却没有文本。"
            "这通常是暂时的。",
        ),
        (
            c.t("Retry the same request.", "原样重试。"),
            c.t(
                "If it keeps happening, shorten the conversation history or try another model.",
                "如果反复出现，请缩短对话历史或换一个模型。",
            ),
        ),
        c.t(
            "retries, then falls back to the next model.",
            "先重试，然后切换到下一个备选模型。",
        ),
    )


def _thinking(c: Ctx) -> Explanation:
    used = _THOUGHTS.search(c.d.message)
    spent = (
        c.t(
            f" ({int(used.group(1)):,} thinking tokens)", f"（{int(used.group(1)):,} 个思考 token）"
        )
        if used
        else ""
    )
    return Explanation(
        c.lang,
        c.t(
            "Thinking used the whole output budget: no visible text (MAX_TOKENS)",
            "思考用完了全部输出预算：没有可见文本（MAX_TOKENS）",
        ),
        c.t(
            f"The model spent max_output_tokens on thinking{spent} and stopped before writing "
            "the answer. Thinking tokens count against the output limit. The same request "
            "ends the same way.",
            f"模型把 max_output_tokens 全部用在了思考上{spent}，还没来得及写出回答就停止了。"
            "思考 token 计入输出上限，同样的请求会得到同样的结果。",
        ),
        (
            c.t(
                "Raise max_output_tokens (or leave it unset), so there is room for thinking "
                "and the answer.",
                "提高 max_output_tokens（或不设置），为思考和回答都留出空间。",
            ),
            c.t(
                f"Or lower the thinking budget: thinking_config thinking_budget (Gemini 2.5) "
                f'or thinking_level "low" (Gemini 3); see {THINKING_URL}.',
                f"或者降低思考预算：thinking_config 的 thinking_budget（Gemini 2.5）"
                f'或 thinking_level "low"（Gemini 3）；参见 {THINKING_URL}。',
            ),
        ),
        c.t(
            "does not repeat the same request; a retry needs a smaller thinking budget or a "
            "larger output limit.",
            "不会原样重试；重试需要更小的思考预算或更大的输出上限。",
        ),
    )


def _stopped(c: Ctx) -> Explanation:
    reason = c.d.reason or "OTHER"
    return Explanation(
        c.lang,
        c.t(f"The generation stopped early ({reason})", f"生成提前停止（{reason}）"),
        c.t(
            f"The candidate ended with finishReason {reason} instead of STOP, so its output "
            "is missing or incomplete. OTHER gives no reason; it is often transient.",
            f"候选结果以 finishReason {reason} 结束，而不是 STOP，因此输出缺失或不完整。"
            "OTHER 不说明原因，通常是暂时的。",
        ),
        (
            c.t("Retry the same request.", "原样重试。"),
            c.t(
                "If it repeats, shorten or rephrase the request, or try another model.",
                "如果反复出现，请缩短或改写请求，或换一个模型。",
            ),
        ),
        c.t(
            "retries, then falls back to the next model.",
            "先重试，然后切换到下一个备选模型。",
        ),
    )


def _no_problem(c: Ctx) -> Explanation:
    return Explanation(
        c.lang,
        c.t("No problem: the response carries usable output", "没有问题：响应包含可用的输出"),
        c.t(
            "The response has a candidate that finished normally with text or a function "
            "call, and no block reason.",
            "响应中有一个正常结束的候选结果，包含文本或函数调用，且没有拦截原因。",
        ),
        (c.t("Nothing to change.", "无需修改。"),),
        c.t("returns the response as it is.", "原样返回响应。"),
    )


QUIET_BUILDERS: dict[Category, Callable[[Ctx], Explanation]] = {
    Category.PROMPT_BLOCKED: _prompt_blocked,
    Category.RESPONSE_BLOCKED: _response_blocked,
    Category.MALFORMED_FUNCTION_CALL: _malformed_call,
    Category.EMPTY_RESPONSE: _empty,
    Category.THINKING_EXHAUSTED: _thinking,
    Category.GENERATION_STOPPED: _stopped,
    Category.NO_PROBLEM: _no_problem,
}
