"""The public surface is deliberate: adding or removing a name must be a visible change."""

from __future__ import annotations

import gemini_guard

EXPECTED = {
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
}


def test_all_is_exactly_the_curated_surface() -> None:
    assert set(gemini_guard.__all__) == EXPECTED
    assert gemini_guard.__all__ == sorted(gemini_guard.__all__, key=str)


def test_every_exported_name_exists() -> None:
    for name in gemini_guard.__all__:
        assert hasattr(gemini_guard, name), name


def test_every_error_derives_from_guard_error() -> None:
    errors = [getattr(gemini_guard, n) for n in EXPECTED if n.endswith(("Error", "Exhausted"))]
    errors += [gemini_guard.CircuitOpen, gemini_guard.QuotaWait, gemini_guard.RequestRejected]
    for cls in errors:
        assert issubclass(cls, gemini_guard.GuardError), cls


def test_version_comes_from_the_installed_metadata() -> None:
    from importlib.metadata import version

    assert gemini_guard.__version__ == version("gemini-guard")
