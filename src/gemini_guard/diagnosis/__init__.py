"""diagnose(): any Gemini failure in, a `Diagnosis` out."""

from gemini_guard.diagnosis._diagnose import diagnose, diagnose_http
from gemini_guard.diagnosis._model import Category, Diagnosis, QuotaViolation, RecentRate

__all__ = ["Category", "Diagnosis", "QuotaViolation", "RecentRate", "diagnose", "diagnose_http"]
