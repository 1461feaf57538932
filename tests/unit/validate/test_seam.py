"""preflight(mode): the callable the Guard's validate= seam takes."""

from __future__ import annotations

import pytest

from gemini_guard.errors import ConfigError, RequestRejected
from gemini_guard.validation import Problem, preflight


def test_off_means_no_check() -> None:
    assert preflight("off") is None


def test_strict_raises_on_errors_and_passes_good_requests() -> None:
    check = preflight("strict")
    assert check is not None
    check("gemini-2.5-flash", "hi", {"temperature": 1.0})
    with pytest.raises(RequestRejected, match="temperature"):
        check("gemini-2.5-flash", "hi", {"temperature": 7})


def test_strict_lets_warnings_through_but_reports_them() -> None:
    seen: list[list[Problem]] = []
    check = preflight("strict", on_problems=lambda _model, problems: seen.append(problems))
    assert check is not None
    check("gemini-2.5-flsh", "hi", None)  # a near miss without a models list: a warning
    assert [[p.severity for p in ps] for ps in seen] == [["warning"]]


def test_warn_never_raises() -> None:
    seen: list[str] = []
    check = preflight("warn", on_problems=lambda model, _problems: seen.append(model))
    assert check is not None
    check("gemini-1.0-pro", "", {"topP": 3})
    assert seen == ["gemini-1.0-pro"]


def test_an_unknown_mode_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="strict, warn, off"):
        preflight("lenient")  # type: ignore[arg-type]


def test_the_catalog_is_used() -> None:
    check = preflight("strict", catalog=[{"name": "models/only-this-one"}])
    assert check is not None
    check("only-this-one", "hi", None)
    with pytest.raises(RequestRejected, match="not in the models list"):
        check("gemini-2.5-flash", "hi", None)
