"""The Guard with a model the shipped table does not know (a preview released later)."""

from __future__ import annotations

from typing import Any

from gemini_guard.clock import FakeClock
from gemini_guard.emulator import serve
from gemini_guard.guard import Guard
from gemini_guard.telemetry import Event, QuotaNotice
from gemini_guard.tiers import model_spec
from tests.support.sdk_clients import emulator_client

NEW = "gemini-9-ultra-preview"
KEY = "AIzaSyUNKNOWNMODELKEY-0123456789abcdef"
SCENARIO: dict[str, Any] = {
    "name": "new-model",
    "default_tier": "tier1",
    "models": {NEW: {}},
    "limits": {NEW: {"tier1": {"rpm": 3}}},
}


def test_an_unknown_model_is_called_and_its_limit_learned_from_the_429() -> None:
    assert model_spec(NEW) is None
    clock = FakeClock()
    events: list[Event] = []
    with serve(SCENARIO, clock=clock) as server:
        with Guard(
            client=emulator_client(server, KEY),
            models=[NEW],
            clock=clock,
            hooks=[events.append],
            log=False,
        ) as guard:
            texts = [
                guard.models.generate_content(model=NEW, contents=f"p {i}").text for i in range(7)
            ]
        stats = server.emulator.stats()["totals"]
    assert all(texts)
    # One 429 revealed the limit; the Guard waited it out and paced the rest by it.
    assert stats["admitted"] == 7
    assert stats["rejected"] == {"rpm": 1}
    learned = [e for e in events if isinstance(e, QuotaNotice) and e.notice == "limit_learned"]
    assert [(e.model, e.metric, e.limit) for e in learned] == [(NEW, "rpm", 3)]
    assert clock.monotonic() >= 60.0  # 7 requests at 3 a minute take two windows
