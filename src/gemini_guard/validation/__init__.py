"""Preflight checks of a generate_content request: catch 400s and 404s before they cost one.

    problems = validate({"model": "gemini-2.5-flash", "contents": "hi",
                         "config": {"max_tokens": 100}})
    # [Problem(path='config.max_tokens', code='unknown_field', ...,
    #          suggestion='maxOutputTokens (snake_case: max_output_tokens)')]

`check_request(model, contents, config, catalog=...)` is the same check in the Guard's
call shape; `rejection(problems)` builds the `RequestRejected` to raise, and
`preflight("strict" | "warn" | "off")` the callable the Guard's `validation=` takes.
"""

from gemini_guard.validation._catalog import ModelCatalog, ModelInfo
from gemini_guard.validation._problem import Problem, Severity, rejection, rejection_diagnosis
from gemini_guard.validation._retired import RETIRED_MODELS, RetiredModel, retired_model
from gemini_guard.validation._seam import VALIDATION_MODES, ValidationMode, preflight
from gemini_guard.validation._validate import ModelSource, check_request, validate

__all__ = [
    "RETIRED_MODELS",
    "VALIDATION_MODES",
    "ModelCatalog",
    "ModelInfo",
    "ModelSource",
    "Problem",
    "RetiredModel",
    "Severity",
    "ValidationMode",
    "check_request",
    "preflight",
    "rejection",
    "rejection_diagnosis",
    "retired_model",
    "validate",
]
