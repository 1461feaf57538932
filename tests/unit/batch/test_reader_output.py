"""Input reading (malformed lines, duplicate ids) and output repair from the journal."""

from __future__ import annotations

import json
from pathlib import Path

from gemini_guard.batch.journal import Journal
from gemini_guard.batch.output import repair
from gemini_guard.batch.reader import read_requests, write_problems
from gemini_guard.batch.result import BatchResult, ErrorInfo


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_malformed_lines_and_duplicate_ids_become_problems_with_line_numbers(
    tmp_path: Path,
) -> None:
    source = _write(
        tmp_path / "in.jsonl",
        [
            '{"id": "a", "prompt": "hello"}',
            "{not json",
            "",
            '{"id": "b", "contents": [{"role": "user", "parts": [{"text": "x"}]}],'
            ' "config": {"temperature": 0.1}, "model": "gemini-2.5-pro"}',
            '{"id": "a", "prompt": "again"}',
            '{"prompt": "no id"}',
            '{"id": "c", "prompt": "p", "contents": "both"}',
            '{"id": "d", "prompt": "p", "temprature": 1}',
            "[1, 2]",
            '{"id": 7, "prompt": "integer ids are fine"}',
        ],
    )
    read = read_requests(source)
    assert [r.id for r in read.requests] == ["a", "b", "7"]
    assert [r.line for r in read.requests] == [1, 4, 10]
    assert read.requests[1].model == "gemini-2.5-pro"
    assert read.requests[1].config == {"temperature": 0.1}
    problems = {p.line: p for p in read.problems}
    assert sorted(problems) == [2, 5, 6, 7, 8, 9]
    assert "not valid JSON" in problems[2].message
    assert "duplicate id 'a' (first on line 1)" in problems[5].message
    assert problems[5].id == "a"
    assert '"id" is missing' in problems[6].message
    assert "exactly one of" in problems[7].message
    assert "'temprature'" in problems[8].message
    assert "allowed" in problems[8].message
    assert "expected a JSON object" in problems[9].message

    errors = tmp_path / "errors.jsonl"
    assert write_problems(errors, read.problems) == 6
    rows = [json.loads(line) for line in errors.read_text().splitlines()]
    assert [r["line"] for r in rows] == [2, 5, 6, 7, 8, 9]
    # each reason also in Chinese, for the CLI; the errors file keeps one language
    assert all(p.explain("zh") != p.explain("en") == p.message for p in read.problems)
    assert problems[5].explain("zh") == "重复的 id 'a'（首次出现在第 1 行）；已跳过此行"
    assert "'temprature'" in problems[8].explain("zh")
    assert [r["error"] for r in rows] == [p.message for p in read.problems]


def _ok(ident: str) -> BatchResult:
    return BatchResult(id=ident, ok=True, text=f"answer {ident}", model="m", attempts=1)


def test_repair_cuts_a_torn_line_and_restores_journaled_lines(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with Journal(tmp_path / "j.sqlite") as journal:
        for ident in ("a", "b", "c"):
            journal.record(_ok(ident))
        # "a" was written; "b" died mid-write; "c" was journaled but never written.
        out.write_bytes(_ok("a").to_line().encode() + _ok("b").to_line().encode()[:10])
        report = repair(out, journal)
        assert report.torn_bytes == 10
        assert report.appended == 2
        lines = out.read_text().splitlines()
        assert sorted(json.loads(x)["id"] for x in lines) == ["a", "b", "c"]
        again = repair(out, journal)  # idempotent
        assert not again.changed
        assert out.read_text().splitlines() == lines


def test_repair_drops_lines_to_retry_and_adopts_unknown_complete_lines(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    bad = BatchResult(
        id="b",
        ok=False,
        attempts=3,
        error=ErrorInfo(category="overloaded", http_status=503, message="busy", error="X"),
    )
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.record(_ok("a"))
        journal.record(bad)
        # "z" is in the output but not in the journal (a journal restored from backup).
        out.write_text(_ok("a").to_line() + bad.to_line() + _ok("z").to_line() + _ok("a").to_line())
        report = repair(out, journal, drop=["b"])
        assert report.dropped == 2  # "b" (asked) and the second "a" (a duplicate)
        assert report.adopted == 1
        assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["a", "z"]
        assert journal.states()["z"] == "done"


def test_result_lines_never_carry_a_key() -> None:
    key = "AIzaSyA1234567890abcdefghijklmnopqrstu"
    result = BatchResult(
        id="x",
        ok=False,
        error=ErrorInfo(
            category="invalid_api_key",
            http_status=400,
            message=f"API key not valid: {key} (url ?key={key})",
            error="RequestRejected",
        ),
    )
    line = result.to_line()
    assert key not in line
    assert "[REDACTED]" in line
