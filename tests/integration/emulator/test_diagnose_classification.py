# ruff: noqa: E501  (the table of cases reads best one case per line)
"""Every error the emulator emits is understood by diagnose() as the right Category.

The emulator answers over a real socket; the SDK raises its own errors; diagnose()
must classify them as what they are (the emulator exists to rehearse these).
"""

from __future__ import annotations

from typing import Any

import httpx
import httpx2
import pytest
from google.genai import errors

from gemini_guard.clock import FakeClock
from gemini_guard.diagnosis import Category, diagnose, diagnose_http
from gemini_guard.emulator import serve
from tests.integration.emulator.conftest import sdk_client

SCENARIO: dict[str, Any] = {
    "accept_unknown_keys": False,
    "cache_min_tokens": 1,
    "keys": {
        "good": {"project": "p"},
        "paid": {"project": "q", "tier": "tier1"},
        "invalid": {"project": "p", "state": "invalid"},
        "leaked": {"project": "p", "state": "leaked"},
        "region": {"project": "p", "state": "region_blocked"},
        "broke": {"project": "p", "state": "credit_depleted"},
    },
    "limits": {
        "gemini-2.5-flash": {
            "free": {"rpm": 1, "tpm": 1_000_000, "rpd": 1000},
            "tier1": {"tpm": 5},
        },
        "gemini-2.5-flash-lite": {"free": {"rpm": 100, "rpd": 1}},
        "gemini-2.5-pro": {"free": {"rpm": 0}},
    },
    "models": {"m-503": {}, "m-500": {}, "m-504": {}, "m-502": {}, "m-drop": {}, "m-phantom": {}},
    "faults": [
        {"kind": "overloaded", "models": ["m-503"]},
        {"kind": "internal", "models": ["m-500"]},
        {"kind": "deadline", "models": ["m-504"], "delay": 5},
        {"kind": "bad_gateway", "models": ["m-502"]},
        {"kind": "drop", "models": ["m-drop"]},
        {"kind": "phantom_429", "models": ["m-phantom"]},
    ],
}

TEXT = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}


def _gen(model: str) -> str:
    return f"/v1beta/models/{model}:generateContent"


# (what, key, method, path, body, expected category); requests run in this order.
CASES: list[tuple[str, str | None, str, str, Any, Category]] = [
    ("rpm", "good", "POST", _gen("gemini-2.5-flash"), TEXT, Category.RATE_LIMITED),
    ("tpm (paid)", "paid", "POST", _gen("gemini-2.5-flash"), {"contents": [{"parts": [{"text": "x" * 40}]}]}, Category.RATE_LIMITED),
    ("rpd", "good", "POST", _gen("gemini-2.5-flash-lite"), TEXT, Category.DAILY_QUOTA_EXHAUSTED),
    ("limit 0", "good", "POST", _gen("gemini-2.5-pro"), TEXT, Category.NO_QUOTA),
    ("phantom 429", "good", "POST", _gen("m-phantom"), TEXT, Category.RATE_LIMITED),
    ("missing key", None, "POST", _gen("m-500"), TEXT, Category.PERMISSION_DENIED),
    ("invalid key", "invalid", "POST", _gen("m-500"), TEXT, Category.INVALID_API_KEY),
    ("unknown key", "who", "GET", "/v1/models", None, Category.INVALID_API_KEY),
    ("leaked key", "leaked", "POST", _gen("m-500"), TEXT, Category.INVALID_API_KEY),
    ("region", "region", "POST", _gen("m-500"), TEXT, Category.PRECONDITION),
    ("credit", "broke", "POST", _gen("m-500"), TEXT, Category.PAYMENT_REQUIRED),
    ("unknown model", "good", "POST", _gen("gemini-1.0-pro"), TEXT, Category.NOT_FOUND),
    ("bad json", "good", "POST", _gen("m-500"), b'{"contents": [', Category.BAD_REQUEST),
    ("unknown field", "good", "POST", _gen("m-500"), {**TEXT, "stream": True}, Category.BAD_REQUEST),
    ("out of range", "good", "POST", _gen("m-500"), {**TEXT, "generationConfig": {"topP": 2}}, Category.BAD_REQUEST),
    ("no contents", "good", "POST", _gen("m-500"), {}, Category.BAD_REQUEST),
    ("too long", "good", "POST", _gen("m-500"), {"contents": [{"parts": [{"text": "x" * 4_200_000}]}]}, Category.REQUEST_TOO_LARGE),
    ("503", "good", "POST", _gen("m-503"), TEXT, Category.OVERLOADED),
    ("500", "good", "POST", _gen("m-500"), TEXT, Category.SERVER_ERROR),
    ("504", "good", "POST", _gen("m-504"), TEXT, Category.DEADLINE_EXCEEDED),
    ("502 html", "good", "POST", _gen("m-502"), TEXT, Category.BAD_GATEWAY),
    ("batch missing", "good", "GET", "/v1beta/batches/nope", None, Category.NOT_FOUND),
    ("cache missing", "good", "GET", "/v1beta/cachedContents/nope", None, Category.PERMISSION_DENIED),
]  # fmt: skip


def test_every_emitted_error_is_classified() -> None:
    wrong = []
    with (
        serve(SCENARIO, clock=FakeClock()) as server,
        httpx.Client(base_url=server.base_url) as http,
    ):
        http.post(_gen("gemini-2.5-flash"), json=TEXT, headers={"x-goog-api-key": "good"})
        http.post(_gen("gemini-2.5-flash-lite"), json=TEXT, headers={"x-goog-api-key": "good"})
        for what, key, method, path, body, expected in CASES:
            headers = {"x-goog-api-key": key} if key else {}
            if isinstance(body, bytes):
                response = http.request(method, path, content=body, headers=headers)
            else:
                response = http.request(method, path, json=body, headers=headers)
            assert response.status_code >= 400, what
            got = diagnose_http(response.status_code, response.content, dict(response.headers))
            if got.category != expected:
                wrong.append(f"{what}: {got.category} != {expected} ({response.text[:120]!r})")
    assert not wrong, "\n".join(wrong)


def test_quota_details_are_read_back_exactly() -> None:
    with (
        serve(SCENARIO, clock=FakeClock()) as server,
        httpx.Client(base_url=server.base_url) as http,
    ):
        for _ in range(2):
            response = http.post(
                _gen("gemini-2.5-flash"), json=TEXT, headers={"x-goog-api-key": "good"}
            )
        found = diagnose_http(response.status_code, response.content, dict(response.headers))
    assert found.retry_after == 60
    assert found.quota is not None
    assert (found.quota.scope, found.quota.unit, found.quota.tier, found.quota.limit) == (
        "minute",
        "requests",
        "free",
        1,
    )
    assert found.quota.model == "gemini-2.5-flash"


@pytest.mark.parametrize(
    ("model", "expected"),
    [("m-503", Category.OVERLOADED), ("m-502", Category.BAD_GATEWAY), ("m-drop", Category.NETWORK)],
)
def test_sdk_exceptions_are_classified(model: str, expected: Category) -> None:
    with serve(SCENARIO, clock=FakeClock()) as server:
        client = sdk_client(server, key="good")
        with pytest.raises((errors.APIError, httpx2.RemoteProtocolError)) as info:
            client.models.generate_content(model=model, contents="hi")
        if expected is not Category.NETWORK:
            assert isinstance(info.value, errors.APIError)
        assert diagnose(info.value).category == expected
