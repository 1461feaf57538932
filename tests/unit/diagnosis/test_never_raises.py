"""diagnose() must give a Diagnosis for anything at all, never an exception."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gemini_guard import Category, Diagnosis, diagnose
from gemini_guard.diagnosis import diagnose_http

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.binary(),
)
_json_like: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(
            st.sampled_from(
                [
                    "error",
                    "code",
                    "message",
                    "status",
                    "details",
                    "@type",
                    "violations",
                    "quotaId",
                    "quotaValue",
                    "retryDelay",
                    "seconds",
                    "nanos",
                    "reason",
                    "quotaDimensions",
                    "model",
                    "metadata",
                    "raw",
                ]
            )
            | st.text(max_size=5),
            inner,
            max_size=6,
        ),
    ),
    max_leaves=30,
)
_error_texts = st.builds(
    lambda prefix, code, status, body: f"{prefix}{code} {status}. {body!r}",
    st.text(max_size=20),
    st.integers(min_value=0, max_value=999),
    st.sampled_from(["RESOURCE_EXHAUSTED", "UNAVAILABLE", "None", "x"]),
    _json_like,
)


class _Hostile:
    """An object whose every attribute read raises."""

    def __getattribute__(self, name: str) -> Any:
        raise RuntimeError(name)


class _BadStr(Exception):
    def __str__(self) -> str:
        raise ValueError("no text")


def _check(d: object) -> None:
    assert isinstance(d, Diagnosis)
    assert isinstance(d.category, Category)
    assert isinstance(d.message, str)
    assert d.retry_after is None or d.retry_after >= 0


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_json_like, _error_texts))
def test_diagnose_never_raises(value: Any) -> None:
    _check(diagnose(value))


@settings(max_examples=200)
@given(
    st.one_of(st.none(), st.integers()),
    st.one_of(st.none(), st.text(), st.binary(), _json_like),
    st.one_of(st.none(), st.dictionaries(st.text(max_size=12), st.text(max_size=40), max_size=4)),
)
def test_diagnose_http_never_raises(status: Any, body: Any, headers: Any) -> None:
    _check(diagnose_http(status, body, headers))


@settings(max_examples=100)
@given(st.one_of(_json_like, _error_texts), st.sampled_from(["en", "zh", "zh-CN", "fr", ""]))
def test_explain_never_raises(value: Any, lang: str) -> None:
    text = diagnose(value).explain(lang, now=1_750_000_000.0)
    assert text.strip()


def test_hostile_objects() -> None:
    for value in (_Hostile(), _BadStr(), object(), type, [_Hostile()], {"error": _Hostile()}):
        _check(diagnose(value))


def test_deeply_nested_text_does_not_blow_the_stack() -> None:
    _check(diagnose("[" * 100_000 + "]" * 100_000))
    _check(diagnose("{'error': " * 5000 + "1" + "}" * 5000))
