"""The quota limiter's own events, turned into telemetry `QuotaNotice` events.

The limiter (`gemini_guard.quota`) reports through a plain `on_event` callback with
its own small values; the Guard forwards them to its sinks in this shape so that
hooks, logs and JSONL files see one kind of event.
"""

from __future__ import annotations

from gemini_guard.quota.events import (
    LimitLearned,
    LimitRecovered,
    PhantomRateLimit,
    StoreDegraded,
    StoreRecovered,
)
from gemini_guard.telemetry.events import PhantomRateLimits, QuotaNotice

__all__ = ["quota_notice"]

_UNITS = {"rpm": "RPM", "tpm": "input TPM", "rpd": "RPD", "tpd": "TPD"}


def quota_notice(event: object) -> QuotaNotice | None:
    """`event` from the limiter as a `QuotaNotice` (None for an event not known here)."""
    if isinstance(event, LimitLearned):
        return QuotaNotice(
            timestamp=event.at,
            call_id="",
            model=event.model,
            notice="limit_learned",
            message=event.message,
            project=event.project,
            metric=event.metric,
            limit=event.enforced,
        )
    if isinstance(event, LimitRecovered):
        return QuotaNotice(
            timestamp=event.at,
            call_id="",
            model=event.model,
            notice="limit_recovered",
            message=(
                f"{event.model} (project {event.project}) paced at {event.effective} "
                f"{_UNITS[event.metric]} again (ceiling {event.ceiling})"
            ),
            project=event.project,
            metric=event.metric,
            limit=event.effective,
        )
    if isinstance(event, PhantomRateLimit):
        return PhantomRateLimits(
            timestamp=event.at,
            call_id="",
            model=event.model,
            notice="phantom_429",
            message=event.message,
            message_zh=event.message_zh,
            project=event.project,
            metric="rpm",
            limit=event.limit,
            refused=event.refused,
            rate=event.rate,
            share=event.rate / event.limit,
            tier=event.tier,
        )
    if isinstance(event, StoreDegraded):
        return QuotaNotice(
            timestamp=event.at,
            call_id="",
            model="",
            notice="store_degraded",
            message=f"quota store {event.store} failed ({event.error}); pacing locally",
        )
    if isinstance(event, StoreRecovered):
        return QuotaNotice(
            timestamp=event.at,
            call_id="",
            model="",
            notice="store_recovered",
            message=f"quota store {event.store} answers again",
        )
    return None
