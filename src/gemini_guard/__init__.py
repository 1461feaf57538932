"""gemini-guard: keep applications that call the Gemini API working through its errors."""

from importlib.metadata import PackageNotFoundError, version

from gemini_guard.clock import Clock, FakeClock, ScaledClock, SystemClock
from gemini_guard.diagnosis import Category, Diagnosis, QuotaViolation, diagnose, diagnose_http
from gemini_guard.errors import (
    Attempt,
    AttemptsExhausted,
    CallFailed,
    CircuitOpen,
    ConfigError,
    DailyQuotaExhausted,
    FallbackExhausted,
    GuardError,
    QuotaWait,
    RequestRejected,
    ScenarioError,
    StoreError,
    StreamInterrupted,
)

try:
    __version__ = version("gemini-guard")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "Attempt",
    "AttemptsExhausted",
    "CallFailed",
    "Category",
    "CircuitOpen",
    "Clock",
    "ConfigError",
    "DailyQuotaExhausted",
    "Diagnosis",
    "FakeClock",
    "FallbackExhausted",
    "GuardError",
    "QuotaViolation",
    "QuotaWait",
    "RequestRejected",
    "ScaledClock",
    "ScenarioError",
    "StoreError",
    "StreamInterrupted",
    "SystemClock",
    "__version__",
    "diagnose",
    "diagnose_http",
]
