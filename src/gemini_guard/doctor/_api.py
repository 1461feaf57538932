"""The isolation test and the model probes: real requests, their failures diagnosed.

One minimal request to a stable model tells "my code" from "my key or project"
from "Google's side"; then each configured model is listed and probed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from gemini_guard.diagnosis import Category, Diagnosis, diagnose, explanation
from gemini_guard.doctor._base import CheckResult, Status, Text, _ms, _result, _short

if TYPE_CHECKING:
    from google import genai

    from gemini_guard.clock import Clock

ISOLATION_PROMPT = "Reply with one short sentence to confirm you are working."


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
