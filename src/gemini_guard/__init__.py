"""gemini-guard: keep applications that call the Gemini API working through its errors."""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from gemini_guard.clock import Clock, FakeClock, ScaledClock, SystemClock
from gemini_guard.diagnosis import (
    Category,
    Diagnosis,
    QuotaViolation,
    diagnose,
    diagnose_http,
    diagnose_response,
)
from gemini_guard.errors import (
    Attempt,
    AttemptsExhausted,
    BudgetExceeded,
    CallFailed,
    CircuitOpen,
    ConfigError,
    DailyQuotaExhausted,
    FallbackExhausted,
    GuardError,
    QuotaWait,
    RequestRejected,
    ResponseBlocked,
    ScenarioError,
    StoreError,
    StreamInterrupted,
    StreamStalled,
)

if TYPE_CHECKING:
    from gemini_guard.call import CallInfo
    from gemini_guard.config import GuardConfig, load_config
    from gemini_guard.guard import Guard, guard_info, last_call, wrap
    from gemini_guard.policies import BreakerPolicy, RetryBudget, RetryPolicy
    from gemini_guard.quota import QuotaLimiter, open_store
    from gemini_guard.validation import ModelCatalog, Problem, validate

# Names whose modules import the google-genai SDK (about a second): loaded on first use,
# so `import gemini_guard` and `gemini-guard diagnose` stay quick.
_LAZY = {
    "BreakerPolicy": "gemini_guard.policies",
    "CallInfo": "gemini_guard.call",
    "Guard": "gemini_guard.guard",
    "GuardConfig": "gemini_guard.config",
    "ModelCatalog": "gemini_guard.validation",
    "Problem": "gemini_guard.validation",
    "QuotaLimiter": "gemini_guard.quota",
    "RetryBudget": "gemini_guard.policies",
    "RetryPolicy": "gemini_guard.policies",
    "guard_info": "gemini_guard.guard",
    "last_call": "gemini_guard.guard",
    "load_config": "gemini_guard.config",
    "open_store": "gemini_guard.quota",
    "validate": "gemini_guard.validation",
    "wrap": "gemini_guard.guard",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gemini_guard' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


try:
    __version__ = version("gemini-guard")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "Attempt",
    "AttemptsExhausted",
    "BreakerPolicy",
    "BudgetExceeded",
    "CallFailed",
    "CallInfo",
    "Category",
    "CircuitOpen",
    "Clock",
    "ConfigError",
    "DailyQuotaExhausted",
    "Diagnosis",
    "FakeClock",
    "FallbackExhausted",
    "Guard",
    "GuardConfig",
    "GuardError",
    "ModelCatalog",
    "Problem",
    "QuotaLimiter",
    "QuotaViolation",
    "QuotaWait",
    "RequestRejected",
    "ResponseBlocked",
    "RetryBudget",
    "RetryPolicy",
    "ScaledClock",
    "ScenarioError",
    "StoreError",
    "StreamInterrupted",
    "StreamStalled",
    "SystemClock",
    "__version__",
    "diagnose",
    "diagnose_http",
    "diagnose_response",
    "guard_info",
    "last_call",
    "load_config",
    "open_store",
    "validate",
    "wrap",
]
