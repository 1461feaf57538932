"""A SQLite ledger file written before the store kept its counts is read right.

The store keeps each ledger's row count and tokens beside its last start, so an
acquire need not count the window; a file from before has slots but no counts,
and must be counted once when it is opened, or its window would look empty.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gemini_guard.quota.ledger import Budget, Granted
from gemini_guard.quota.stores.base import QuotaKey
from gemini_guard.quota.stores.sqlite import SQLiteStore

T = 1_750_000_000.0  # wall seconds (a June day: far from a Pacific midnight)
KEY = QuotaKey("proj-f", "gemini-2.5-flash")
ORPHAN = QuotaKey("proj-f", "gemini-2.5-pro")  # slots but no ledger row

_OLD_SCHEMA = """
CREATE TABLE quota_slots (
    project TEXT NOT NULL, model TEXT NOT NULL, slot_id TEXT NOT NULL,
    end_at REAL NOT NULL, tokens INTEGER NOT NULL, hold_until REAL NOT NULL,
    start_at REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (project, model, slot_id)
) WITHOUT ROWID;
CREATE TABLE quota_ledgers (
    project TEXT NOT NULL, model TEXT NOT NULL, last_start REAL NOT NULL,
    PRIMARY KEY (project, model)
) WITHOUT ROWID;
"""


def _old_file(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript(_OLD_SCHEMA)
    for key, tokens in ((KEY, 300), (ORPHAN, 400)):
        db.executemany(
            "INSERT INTO quota_slots VALUES (?, ?, ?, ?, ?, 0, 0)",
            [
                (key.project, key.model, "a", T - 30.0, tokens),
                (key.project, key.model, "b", T - 10.0, tokens),
            ],
        )
    db.execute("INSERT INTO quota_ledgers VALUES (?, ?, ?)", (*KEY, T - 40.0))
    db.commit()
    db.close()


@pytest.mark.parametrize("key", [KEY, ORPHAN], ids=["ledger", "orphan-slots"])
@pytest.mark.parametrize(
    ("budget", "tokens"),
    [
        (Budget(requests=2), 0),  # two slots in the window: the third waits for one
        (Budget(tokens=1000), 500),  # 600 or 800 tokens used: 500 more wait for one
    ],
    ids=["requests", "tokens"],
)
def test_an_older_file_is_counted_when_opened(
    tmp_path: Path, key: QuotaKey, budget: Budget, tokens: int
) -> None:
    path = tmp_path / "quota.db"
    _old_file(path)
    store = SQLiteStore(path)
    try:
        result = store.acquire(
            key, slot_id="c", budget=budget, tokens=tokens, now=T, allowance=0.0, deadline=None
        )
        assert isinstance(result, Granted)
        assert result.start == pytest.approx(T + 30.0, abs=1e-6)  # the older one has left
        usage = store.usage(key, now=T)
        assert (usage.requests, usage.tokens) == (3, 2 * (300 if key == KEY else 400) + tokens)
    finally:
        store.close()
