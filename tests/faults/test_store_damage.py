"""Damaged SQLite files: a cache is bypassed with one warning, a state file gets a clear
error naming the file and the fix (or, opted in, is moved aside and started afresh), a
damaged batch journal says how to resume. Real files, real emulator, real SDK."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
from pathlib import Path

import pytest
from google.genai import types

from gemini_guard.batch.journal import journal_path
from gemini_guard.clock import FakeClock
from gemini_guard.emulator import EmulatorServer
from gemini_guard.errors import StoreError
from gemini_guard.guard import Guard
from gemini_guard.quota.stores.sqlite import SQLiteStore
from tests.faults._batch import command, env_for, lines, sent, write_input
from tests.support.sdk_clients import emulator_client

FLASH = "gemini-2.5-flash"


def _not_a_database(path: Path) -> None:
    path.write_bytes(b"this is not a database, it is a text file\n" * 200)


def _corrupt_middle(path: Path) -> None:
    """Overwrite pages in the middle of a real database with garbage."""
    data = bytearray(path.read_bytes())
    assert len(data) >= 8 * 4096, "the database is too small to damage in the middle"
    middle = len(data) // 2
    data[middle : middle + 3 * 4096] = b"\xde\xad\xbe\xef" * (3 * 1024)
    path.write_bytes(bytes(data))


def _filled_state_file(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=DELETE")
    db.close()
    store = SQLiteStore(path)
    store.close()
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE ballast (n INTEGER PRIMARY KEY, text TEXT)")
    db.executemany("INSERT INTO ballast (text) VALUES (?)", [("x" * 200,) for _ in range(800)])
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def test_a_cache_file_that_is_not_a_database_is_bypassed_with_one_warning(
    emulator: EmulatorServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache.db"
    _not_a_database(cache)
    with caplog.at_level(logging.WARNING, logger="gemini_guard"):
        guard = Guard(
            client=emulator_client(emulator, "k-cache-damage"),
            clock=FakeClock(),
            cache=f"sqlite:///{cache}",
            log=False,
        )
        for _ in range(3):
            answer = guard.models.generate_content(
                model=FLASH, contents="same", config={"temperature": 0}
            )
            assert answer.text
    warnings = [r for r in caplog.records if "cache bypassed" in r.getMessage()]
    assert len(warnings) == 1
    assert str(cache) in warnings[0].getMessage()
    assert sent(emulator) == 3  # uncached, but served


@pytest.mark.parametrize("damage", ["not a database", "corrupt middle"])
def test_a_damaged_state_file_names_the_file_and_the_fix(tmp_path: Path, damage: str) -> None:
    state = tmp_path / "state.db"
    if damage == "not a database":
        _not_a_database(state)
    else:
        _filled_state_file(state)
        _corrupt_middle(state)
    with pytest.raises(StoreError) as refused:
        SQLiteStore.from_url(f"sqlite:///{state}")
    message = str(refused.value)
    assert str(state) in message
    assert "on_corrupt=reset" in message
    assert f"mv {state}" in message
    assert refused.value.__cause__ is None  # one clear message, no driver traceback


def test_on_corrupt_reset_moves_the_file_aside_and_starts_afresh(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state.db"
    _filled_state_file(state)
    _corrupt_middle(state)
    damaged = state.read_bytes()
    with caplog.at_level(logging.WARNING, logger="gemini_guard"):
        store = SQLiteStore.from_url(f"sqlite:///{state}?on_corrupt=reset")
    try:
        assert store.path == state
        assert (tmp_path / "state.db.damaged-1").read_bytes() == damaged
        assert any("moved aside" in r.getMessage() for r in caplog.records)
        check = sqlite3.connect(state)
        assert check.execute("PRAGMA quick_check").fetchone() == ("ok",)
        check.close()
    finally:
        store.close()


def test_a_guard_whose_breaker_store_is_damaged_refuses_with_the_fix(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    state = tmp_path / "breakers.db"
    _not_a_database(state)
    with pytest.raises(StoreError, match="on_corrupt=reset"):
        Guard(client=emulator_client(emulator, "k-breakers"), store=f"sqlite:///{state}", log=False)
    guard = Guard(
        client=emulator_client(emulator, "k-breakers"),
        store=f"sqlite:///{state}?on_corrupt=reset",
        log=False,
    )
    assert guard.models.generate_content(model=FLASH, contents="hi").text
    guard.close()


def test_a_damaged_journal_says_how_to_resume_and_resuming_doubles_nothing(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = write_input(source, 40)
    first = subprocess.run(
        command(source, out), env=env_for(emulator), capture_output=True, text=True, timeout=120
    )
    assert first.returncode == 0, first.stderr
    journal = journal_path(out)
    _not_a_database(journal)
    broken = subprocess.run(
        command(source, out), env=env_for(emulator), capture_output=True, text=True, timeout=60
    )
    assert broken.returncode == 1
    assert "Traceback" not in broken.stderr
    assert f"mv {journal} {journal}.damaged" in broken.stderr
    journal.rename(tmp_path / "aside.sqlite")
    resumed = subprocess.run(
        command(source, out), env=env_for(emulator), capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(row["id"] for row in lines(out)) == sorted(ids)
    assert sent(emulator) == len(ids)  # the rebuilt journal sent nothing again


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("sqlite:///x.db?on_corrupt=maybe", "on_corrupt must be 'fail' or 'reset'"),
        ("sqlite:///x.db?mode=ro", "unknown: mode"),
    ],
)
def test_a_bad_on_corrupt_option_is_a_config_error(url: str, words: str) -> None:
    from gemini_guard.errors import ConfigError

    with pytest.raises(ConfigError, match=words):
        SQLiteStore.from_url(url)


def test_a_cache_damaged_while_running_warns_once_then_is_bypassed(
    emulator: EmulatorServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache.db"
    guard = Guard(
        client=emulator_client(emulator, "k-cache-damage-later"),
        clock=FakeClock(),
        cache=f"sqlite:///{cache}",
        log=False,
    )
    config = types.GenerateContentConfig(temperature=0)
    for prompt in ("first", "first"):  # a miss, then a hit: the file works
        assert guard.models.generate_content(model=FLASH, contents=prompt, config=config).text
    assert sent(emulator) == 1
    for name in (cache.name, cache.name + "-wal", cache.name + "-shm"):
        if (tmp_path / name).exists():
            _not_a_database(tmp_path / name)
    with caplog.at_level(logging.WARNING, logger="gemini_guard"):
        for n in range(4):
            prompt = "first" if n % 2 else f"new {n}"
            assert guard.models.generate_content(model=FLASH, contents=prompt, config=config).text
    guard.close()
    warnings = [r.getMessage() for r in caplog.records if "response cache" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert str(cache) in warnings[0]
    assert "bypassed until this process restarts" in warnings[0]
    assert sent(emulator) == 5  # every call after the damage went upstream, and was served
