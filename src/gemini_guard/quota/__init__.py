"""Pace Gemini requests under RPM, input TPM, RPD and TPD, exactly, across processes.

limiter = QuotaLimiter(store="sqlite:///state.db", tier="free", clock=clock)
permit = limiter.reserve(project="my-project", model="gemini-2.5-flash", tokens=120)
clock.sleep(permit.wait)
while (extra := limiter.confirm(permit)) > 0:   # re-checked just before sending
    clock.sleep(extra)
... send the request ...
limiter.settle(permit, sent=True, input_tokens=usage.prompt_token_count)
"""

from __future__ import annotations

from gemini_guard.quota.adaptive import AdaptiveLimits, AdaptivePolicy
from gemini_guard.quota.events import (
    LimitLearned,
    LimitRecovered,
    PhantomRateLimit,
    StoreDegraded,
    StoreRecovered,
)
from gemini_guard.quota.ledger import Budget
from gemini_guard.quota.limiter import QuotaLimiter
from gemini_guard.quota.limits import LimitPolicy
from gemini_guard.quota.pool import ANY_PROJECT, Headroom, Project, ProjectPool
from gemini_guard.quota.stores import KeyUsage, QuotaKey, QuotaStore, open_store

__all__ = [
    "ANY_PROJECT",
    "AdaptiveLimits",
    "AdaptivePolicy",
    "Budget",
    "Headroom",
    "KeyUsage",
    "LimitLearned",
    "LimitPolicy",
    "LimitRecovered",
    "PhantomRateLimit",
    "Project",
    "ProjectPool",
    "QuotaKey",
    "QuotaLimiter",
    "QuotaStore",
    "StoreDegraded",
    "StoreRecovered",
    "open_store",
]
