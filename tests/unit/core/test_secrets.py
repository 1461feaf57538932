"""The process-wide secret registry: values of any shape are scrubbed from texts,
from our errors' messages and from the SDK error chained under them."""

from __future__ import annotations

from google.genai import errors as genai_errors

from gemini_guard.diagnosis._redact import redact
from gemini_guard.errors import StoreError
from gemini_guard.secrets import REDACTED, known_secrets, register_secret, scrub, scrubbed

TOKEN = "gw-unit-9f8e7d6c5b4a39281706"


def test_a_registered_value_of_any_shape_is_scrubbed_with_its_url_encoded_form() -> None:
    register_secret("p@ss/w0rd!x")
    assert scrub("a p@ss/w0rd!x b p%40ss%2Fw0rd%21x") == f"a {REDACTED} b {REDACTED}"
    assert redact("token=p@ss/w0rd!x") == f"token={REDACTED}"


def test_too_short_or_missing_values_are_not_registered() -> None:
    register_secret("abc")
    register_secret(None)
    assert "abc" not in known_secrets()
    assert scrub("abc") == "abc"


def test_our_errors_redact_their_message() -> None:
    register_secret(TOKEN)
    assert TOKEN not in str(StoreError(f"store failed: {TOKEN}"))


def test_scrubbed_cleans_the_sdk_error_in_place_and_keeps_its_type() -> None:
    register_secret(TOKEN)
    inner = ValueError(f"under {TOKEN}")
    try:
        try:
            raise inner
        except ValueError as exc:
            raise genai_errors.ClientError(
                400, {"error": {"code": 400, "message": f"bad {TOKEN}", "status": "X"}}
            ) from exc
    except genai_errors.ClientError as outer:
        error = outer
    assert scrubbed(error) is error
    assert isinstance(error, genai_errors.ClientError)
    assert TOKEN not in str(error)
    assert TOKEN not in str(error.message)
    assert TOKEN not in repr(error.details)
    assert TOKEN not in str(inner)
    assert scrubbed(None) is None
