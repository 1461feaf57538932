"""diagnose(): any Gemini failure in, a `Diagnosis` out."""

from gemini_guard.diagnosis._diagnose import HEALTHY, diagnose, diagnose_http, diagnose_response
from gemini_guard.diagnosis._explain import explain as _explain
from gemini_guard.diagnosis._explain import explanation
from gemini_guard.diagnosis._explanation import Explanation, Lang, format_seconds
from gemini_guard.diagnosis._log import LogEntry, LogReport, diagnose_log
from gemini_guard.diagnosis._model import (
    Category,
    Diagnosis,
    QuotaViolation,
    RecentRate,
    register_explainer,
)
from gemini_guard.diagnosis._reference import QUICK_TABLE, Sample, load_samples, variants_of
from gemini_guard.diagnosis._response import looks_like_response, plainly_usable
from gemini_guard.diagnosis._vertex import is_vertex

register_explainer(_explain)

__all__ = [
    "HEALTHY",
    "QUICK_TABLE",
    "Category",
    "Diagnosis",
    "Explanation",
    "Lang",
    "LogEntry",
    "LogReport",
    "QuotaViolation",
    "RecentRate",
    "Sample",
    "diagnose",
    "diagnose_http",
    "diagnose_log",
    "diagnose_response",
    "explanation",
    "format_seconds",
    "is_vertex",
    "load_samples",
    "looks_like_response",
    "plainly_usable",
    "variants_of",
]
