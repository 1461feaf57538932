"""The fault-injection suite, bounded in time: each fault of `python -m bench faults`
at its quick size, with the outcome pinned: nothing lost, nothing doubled, and what
the user is told names the problem and the way on."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from bench.faults import FaultFigures, run

from tests.support.binaries import require_binary


def _pinned(figures: list[FaultFigures]) -> None:
    for f in figures:
        assert f.lost == 0, f
        assert f.doubled == 0, f
        assert "UNCLEAR" not in f.message, f
        assert "Traceback" not in f.message, f


@pytest.mark.slow
def test_kill_9_of_batch_at_random_moments(tmp_path: Path) -> None:
    figures = run("kill9", tmp_path, quick=True)
    _pinned(figures)
    assert figures[0].injected >= 1
    assert figures[0].answered == 120


def test_disk_full_under_the_batch_output_stops_clearly_and_resumes(tmp_path: Path) -> None:
    (figures,) = run("disk_full", tmp_path, quick=True)
    _pinned([figures])
    assert figures.injected == 1
    assert figures.answered == 200
    assert "cannot write" in figures.message
    assert "run the same command again" in figures.message


def test_the_upstream_dropping_connections_mid_body(tmp_path: Path) -> None:
    (figures,) = run("drop", tmp_path, quick=True)
    _pinned([figures])
    assert figures.injected >= 1
    assert figures.answered == 25
    # Every request is either a cut answer or a whole one, and each call got one whole.
    assert figures.attempted == figures.answered + figures.injected


@pytest.mark.redis
@pytest.mark.slow
def test_a_paused_and_a_killed_redis_under_a_four_process_quota_run(tmp_path: Path) -> None:
    require_binary("redis-server", why="the quota fault run needs a real Redis")
    paused, killed = run("redis", tmp_path, quick=True)
    _pinned([paused, killed])
    assert paused.answered == killed.answered == 4 * 30
    assert paused.attempted == 4 * 30
    assert "degraded" in paused.message
    # A frozen Redis costs a call two short timeouts, not seconds.
    assert paused.worst_added_ms is not None
    assert paused.worst_added_ms < 1500  # the 2 s timeout of before: over 4000


def test_a_sqlite_state_file_made_read_only_then_corrupted_under_load(tmp_path: Path) -> None:
    figures = run("sqlite", tmp_path, quick=True)
    _pinned(figures)
    by_name = {f.fault: f for f in figures}
    corrupted = by_name["SQLite state corrupted"]
    assert str(tmp_path / "state.db") in corrupted.message
    assert "on_corrupt=reset" in corrupted.message
    assert corrupted.attempted == corrupted.answered  # a refused call was never sent
    reset = by_name["SQLite state reopened with on_corrupt=reset"]
    assert reset.answered == reset.attempted == 24
    if os.geteuid() != 0:  # root ignores file modes: the read-only phase needs a user
        read_only = by_name["SQLite state made read-only"]
        assert read_only.attempted == read_only.answered


ROOT = Path(__file__).resolve().parents[2]
SQLITE_AS_USER = """
import dataclasses, json, sys
from pathlib import Path
from bench.faults import run
print(json.dumps([dataclasses.asdict(f) for f in run("sqlite", Path(sys.argv[1]), quick=True)]))
"""


def test_the_read_only_phase_runs_without_the_power_to_ignore_file_modes_when_root() -> None:
    """Root ignores file modes (CAP_DAC_OVERRIDE), so as root the SQLite fault runs again
    as root without the capabilities that override them (util-linux's `setpriv`, on
    every Debian machine), or else as `nobody` in a directory it owns, for its
    read-only phase to mean anything."""
    if os.geteuid() != 0:
        pytest.skip("not root: the test above already runs the read-only phase")
    work = Path(tempfile.mkdtemp(prefix="gemini-guard-read-only-"))
    try:
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        prefix: list[str] = []
        drop: dict[str, Any] = {}
        setpriv = shutil.which("setpriv")
        if setpriv is not None:
            caps = "-dac_override,-dac_read_search"
            prefix = [setpriv, "--bounding-set", caps, "--inh-caps", caps, "--"]
        else:
            nobody = pwd.getpwnam("nobody")
            os.chown(work, nobody.pw_uid, nobody.pw_gid)
            env["HOME"] = str(work)
            # subprocess drops the groups, then the group, then the user, in the child.
            drop = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
            probe = subprocess.run(
                [sys.executable, "-c", "import bench.faults"],
                cwd=ROOT, env=env, **drop, capture_output=True, timeout=60,
            )  # fmt: skip
            if probe.returncode != 0:
                pytest.skip(f"no setpriv, and `nobody` cannot read this checkout and its "
                            f"Python ({ROOT}): the read-only phase needs a process that "
                            "file modes apply to")  # fmt: skip
        done = subprocess.run(
            [*prefix, sys.executable, "-c", SQLITE_AS_USER, str(work)],
            cwd=ROOT, env=env, **drop, capture_output=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
        figures = [
            FaultFigures(**{**f, "notes": tuple(f["notes"])})
            for f in json.loads(done.stdout.decode().splitlines()[-1])
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _pinned(figures)
    by_name = {f.fault: f for f in figures}
    read_only = by_name["SQLite state made read-only"]
    assert read_only.injected == 1
    assert read_only.attempted == read_only.answered  # a refused call was never sent
    assert str(work / "state.db") in by_name["SQLite state corrupted"].message
