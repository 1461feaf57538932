"""`Problem`: one thing wrong with a request, found before it is sent."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from gemini_guard.diagnosis import Category, Diagnosis
from gemini_guard.errors import RequestRejected

__all__ = ["Problem", "Severity", "rejection", "rejection_diagnosis"]

Severity = Literal["error", "warning"]

# What the API itself answers for each kind of mistake, so a request rejected locally
# looks, to policies and to a gateway's clients, like the answer it would have earned.
_WIRE: dict[Category, tuple[int, str]] = {
    Category.BAD_REQUEST: (400, "INVALID_ARGUMENT"),
    Category.REQUEST_TOO_LARGE: (400, "INVALID_ARGUMENT"),
    Category.NOT_FOUND: (404, "NOT_FOUND"),
}
# When several errors are found, the one the server would report first leads: it
# resolves the model before it parses the body.
_PRECEDENCE = (Category.NOT_FOUND, Category.REQUEST_TOO_LARGE, Category.BAD_REQUEST)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a request: where, what, what is allowed, and a likely fix.

    `path` names the field as the caller spelled it (`config.max_tokens`,
    `generationConfig.temperature`, `contents[0].role`, `model`). `code` is a stable
    identifier for programs (`unknown_field`, `out_of_range`, ...). `severity` "error"
    means the API would reject the request; "warning" means it is probably a mistake
    but may pass.
    """

    path: str
    code: str
    message: str
    message_zh: str
    allowed: str | None = None
    suggestion: str | None = None
    severity: Severity = "error"
    category: Category = Category.BAD_REQUEST

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def explain(self, lang: Literal["en", "zh"] | str = "en") -> str:
        """One line: the field, what is wrong, what is allowed, and the did-you-mean."""
        zh = lang.lower().startswith("zh")
        text = f"{self.path}: {self.message_zh if zh else self.message}"
        if self.allowed is not None:
            text += f"（允许：{self.allowed}）" if zh else f" (allowed: {self.allowed})"
        if self.suggestion is not None:
            text += (
                f"。你是不是想写 {self.suggestion}？"
                if zh
                else f". Did you mean {self.suggestion}?"
            )
        return text

    def diagnosis(self) -> Diagnosis:
        """This problem as the `Diagnosis` of a request that was never sent."""
        return rejection_diagnosis([self])

    def __str__(self) -> str:
        return self.explain("en")


def rejection_diagnosis(problems: Iterable[Problem]) -> Diagnosis:
    """The `Diagnosis` of a request refused locally because of `problems` (errors only).

    Its status and category are those the API would have answered with; its message
    lists every error, the one the server would report first leading.
    """
    errors = [p for p in problems if p.is_error]
    if not errors:
        raise ValueError("rejection_diagnosis() needs at least one problem of severity 'error'")
    errors.sort(key=lambda p: _PRECEDENCE.index(p.category) if p.category in _PRECEDENCE else 99)
    lead = errors[0]
    http_status, grpc_status = _WIRE.get(lead.category, (400, "INVALID_ARGUMENT"))
    message = "Rejected before sending (the API would refuse it): " + "; ".join(
        p.explain("en") for p in errors
    )
    return Diagnosis(
        http_status=http_status,
        grpc_status=grpc_status,
        reason=None,
        message=message,
        category=lead.category,
        retryable=False,
    )


def rejection(problems: Iterable[Problem], *, model: str | None = None) -> RequestRejected:
    """The `RequestRejected` to raise for `problems` (nothing was sent, so no attempts)."""
    diagnosis = rejection_diagnosis(problems)
    prefix = f"{model}: " if model else ""
    return RequestRejected(prefix + diagnosis.message, diagnosis=diagnosis)
