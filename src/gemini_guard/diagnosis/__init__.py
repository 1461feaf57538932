"""diagnose(): any Gemini failure in, a `Diagnosis` out."""

from gemini_guard.diagnosis._diagnose import HEALTHY, diagnose, diagnose_http, diagnose_response
from gemini_guard.diagnosis._log import LogEntry, LogReport, diagnose_log
from gemini_guard.diagnosis._model import Category, Diagnosis, QuotaViolation, RecentRate
from gemini_guard.diagnosis._response import looks_like_response

__all__ = [
    "HEALTHY",
    "Category",
    "Diagnosis",
    "LogEntry",
    "LogReport",
    "QuotaViolation",
    "RecentRate",
    "diagnose",
    "diagnose_http",
    "diagnose_log",
    "diagnose_response",
    "looks_like_response",
]
