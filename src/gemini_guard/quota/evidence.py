"""Tell a limit from noise: what this process's own answers say about a bare 429.

A 429 with no `QuotaFailure` names no quota. It may be a limit lower than the one
paced by (Google cut limits without notice in December 2025), or it may not be
about our rate at all: the phantom 429s Google acknowledged in December 2025 came at
0.3% of paid limits, and Vertex's dynamic shared quota refuses whenever shared
capacity is short. A limit and noise leave different traces in the answers:

- A sliding-window limit refuses only at the top: a request is refused when the
  server already holds the limit's worth of our requests from the last minute, and
  admitted when it holds fewer. So a refusal at a level (our requests the server may
  have held when it refused: those it admitted in the minute before, plus those in
  flight) lower than a level at which it admitted another request within the same
  minute contradicts a limit. Noise refuses at any level: it soon contradicts itself.
- The server admitted every request it answered in the last minute: whatever the
  limit is, it is at least that many (the *floor*). A cut never goes below it.
- A limit shows as our rate approaches it: a 429 near the level paced by (at
  `decrease` of it or more) fits a cut of that level. One far below it would be a
  much lower limit, which Google states in the 429's body; a bare one fits only
  when it holds like a wall: for a whole minute, more answers refused than
  admitted, at levels the server never admits meanwhile. Then the cut goes to the
  level seen, never below the floor. (Noise at a steady rate also refuses at
  levels no success exceeds when the traffic is very regular; refusing less than
  half of what is sent, it is not taken for a wall.)
- A "limit" at a tenth of the one published for the tier, with nothing stated in
  the body, is what the phantom-429 bug looked like; Google's own cuts were 50-80%.

`RateEvidence` keeps, per ledger, the answers of the last two minutes (wall seconds
of the limiter's clock) and judges each bare 429 by those rules. It knows only this
process's requests: other processes sharing the project add requests it cannot see,
so its floor is low (safe) and its levels may be low too; the shared levels still
merge what every process concludes. This module is pure bookkeeping; the limiter
acts on its verdicts.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field
from typing import Literal

from gemini_guard.quota.stores.base import QuotaKey

__all__ = ["PHANTOM_SHARE", "Judgement", "PhantomFigures", "RateEvidence"]

WINDOW = 60.0  # the server's sliding window, seconds
PHANTOM_SHARE = 0.1  # a bare 429 below this share of the ceiling is not a limit
PHANTOM_HOLD = 60.0  # seconds bare 429s stay noise after one contradicted a limit
TELL_AFTER = 3  # noise 429s in a minute before they are reported
WALL_SHARE = 0.5  # a wall refuses at least this share of what is sent
CUT_MEMORY = 300.0  # seconds a cut of ours still tells where the limit was
_KEEP = 2 * WINDOW  # answers older than this say nothing any more
_MAX_LEDGERS = 10_000  # a cache, not a registry


Why = Literal["near", "wall", "contradicted", "small_share", "held", "far_below"]


@dataclass(frozen=True, slots=True)
class Judgement:
    """What a bare 429 says. `limit`: it fits a limit (`why` "near": cut the level
    paced by; "wall": cut to `to`), and no cut may go below `floor`; otherwise it is
    noise, or not a limit yet ("far_below": a wall that has not held a minute)."""

    limit: bool
    level: int  # our requests the server may have held when it refused
    floor: int  # requests it admitted in the last minute, at least
    why: Why
    to: int | None = None  # the level a wall shows


@dataclass(frozen=True, slots=True)
class PhantomFigures:
    """What to tell about the bare 429s that were not a limit, over the last minute."""

    refused: int  # bare 429s judged noise
    admitted: int  # requests the server admitted meanwhile


@dataclass(frozen=True, slots=True)
class _Cut:
    at: float  # when (the limiter's wall clock)
    level: int  # the level the 429 that made it was refused at
    stamp: float  # the `last_cut` of the level it wrote, which names it
    to: int  # the level it cut to


@dataclass(slots=True)
class _Answers:
    ok_at: list[float] = field(default_factory=list)  # answer times of successes, sorted
    ok_level: list[int] = field(default_factory=list)  # the level each was admitted at
    noise_at: list[float] = field(default_factory=list)  # answer times of noise 429s
    flight: int = 0  # sent, not answered yet
    held_until: float = float("-inf")  # bare 429s are noise until then
    cut: _Cut | None = None  # our last cut from a bare 429
    wall_since: float | None = None  # far-below 429s, uncontradicted since then
    wall_level: int = 0  # the lowest level they came at
    wall_last: float = float("-inf")  # the latest of them
    wall_refused: int = 0  # bare 429s since wall_since
    told_at: float = float("-inf")  # when the noise was last reported


class RateEvidence:
    """Recent answers per ledger and the verdicts drawn from them (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ledgers: dict[QuotaKey, _Answers] = {}

    def _of(self, key: QuotaKey) -> _Answers:
        answers = self._ledgers.get(key)
        if answers is None:
            if len(self._ledgers) >= _MAX_LEDGERS:
                self._ledgers.clear()
            answers = self._ledgers[key] = _Answers()
        return answers

    @staticmethod
    def _trim(answers: _Answers, now: float) -> None:
        old = bisect.bisect_left(answers.ok_at, now - _KEEP)
        if old:
            del answers.ok_at[:old]
            del answers.ok_level[:old]
        old = bisect.bisect_left(answers.noise_at, now - WINDOW)
        if old:
            del answers.noise_at[:old]

    @staticmethod
    def _admitted(answers: _Answers, start: float, end: float) -> int:
        """Successes answered in (start, end]."""
        ok_at = answers.ok_at
        return bisect.bisect_right(ok_at, end) - bisect.bisect_right(ok_at, start)

    @staticmethod
    def _floor(answers: _Answers, now: float) -> int:
        first = bisect.bisect_right(answers.ok_at, now - WINDOW)
        levels = answers.ok_level[first:]
        # What succeeded in the last minute; and admitted at level k: the limit is
        # above k. (Answers bound arrivals only within a latency: a minute of answers
        # may hold a few more than one window of arrivals, a few 429s at most.)
        return max(len(levels), max(levels, default=-1) + 1)

    @staticmethod
    def _reference(answers: _Answers, paced: int, now: float) -> int:
        """The level a 429 is near when it fits a limit: the one paced by, or the
        one our recent cut found, if lower (recovery may have stepped above it)."""
        cut = answers.cut
        if cut is None or now - cut.at > CUT_MEMORY:
            return paced
        return min(paced, cut.to)

    def sent(self, key: QuotaKey) -> None:
        with self._lock:
            self._of(key).flight += 1

    def failed(self, key: QuotaKey) -> None:
        """A sent attempt ended without a success or a bare 429 (nothing learned)."""
        with self._lock:
            answers = self._ledgers.get(key)
            if answers is not None and answers.flight > 0:
                answers.flight -= 1

    def succeeded(
        self,
        key: QuotaKey,
        *,
        sent_at: float,
        now: float,
        slack: float = 0.0,
        counted: bool = True,
    ) -> float | None:
        """Record a success. When it contradicts our last cut from a bare 429
        (admitted at or above the level that cut was refused at, within a minute),
        that cut was noise: returns its stamp (to undo it), and bare 429s are held
        to be noise for a while. `counted`: its sending was recorded by `sent`.
        `slack`: the longest an answer takes, about (see `judge`)."""
        with self._lock:
            answers = self._of(key)
            if counted and answers.flight > 0:
                answers.flight -= 1
            self._trim(answers, now)
            # Its level, at least: answered before it was sent (so admitted before it
            # arrived) and sent within the minute before its answer (so still in the
            # server's window when it arrived).
            level = self._admitted(answers, now - WINDOW + slack, sent_at)
            at = bisect.bisect_right(answers.ok_at, now)
            answers.ok_at.insert(at, now)
            answers.ok_level.insert(at, level)
            if answers.wall_since is not None and level >= answers.wall_level:
                answers.wall_since = None  # admitted where the "wall" refused: not one
            cut = answers.cut
            if cut is None or now - cut.at > WINDOW or level < cut.level:
                return None
            answers.cut = None
            answers.held_until = now + PHANTOM_HOLD
            return cut.stamp

    def judge(
        self,
        key: QuotaKey,
        *,
        sent_at: float,
        now: float,
        ceiling: int | None,
        paced: int | None,
        decrease: float,
        slack: float = 0.0,
        counted: bool = True,
    ) -> Judgement:
        """Judge a bare 429 sent at `sent_at` and answered at `now`; `ceiling` is
        the configured (or stated) limit, `paced` the one paced by now. `slack`:
        about the longest an answer takes; the server counts a request when it
        arrives, which the answers only bound (a success answered after
        `now - 60 + slack` was sent, so admitted, within the last minute)."""
        with self._lock:
            answers = self._of(key)
            if counted and answers.flight > 0:
                answers.flight -= 1
            self._trim(answers, now)
            # At most: every success answered after it could have been in the
            # server's window when it arrived, and every request still in flight.
            level = self._admitted(answers, sent_at - WINDOW, now) + answers.flight
            floor = self._floor(answers, now)
            why: Why
            if level < floor:
                why = "contradicted"
                answers.held_until = now + PHANTOM_HOLD
                answers.wall_since = None
            elif now < answers.held_until:
                why = "held"
            elif ceiling is not None and level < PHANTOM_SHARE * ceiling:
                why = "small_share"
            elif paced is None or level >= decrease * self._reference(answers, paced, now):
                return Judgement(True, level, floor, "near")
            else:
                if answers.wall_since is None or now - answers.wall_last > WINDOW / 2:
                    answers.wall_since, answers.wall_level = now, level
                    answers.wall_refused = 0
                answers.wall_level = min(answers.wall_level, level)
                answers.wall_last = now
                answers.wall_refused += 1
                if now - answers.wall_since >= WINDOW:
                    admitted = self._admitted(answers, answers.wall_since, now)
                    refused = answers.wall_refused
                    answers.wall_since = None
                    if refused >= WALL_SHARE * (refused + admitted):
                        return Judgement(True, level, floor, "wall", to=answers.wall_level)
                return Judgement(False, level, floor, "far_below")
            answers.noise_at.append(now)
            return Judgement(False, level, floor, why)

    def cut_made(self, key: QuotaKey, *, now: float, level: int, stamp: float, to: int) -> None:
        """Our cut from a bare 429 refused at `level` down `to` a level (`stamp`: the
        `last_cut` it wrote): a success at or above `level` within a minute shows it
        was noise (see `succeeded`)."""
        with self._lock:
            self._of(key).cut = _Cut(now, level, stamp, to)

    def take_cut(self, key: QuotaKey) -> float | None:
        """The stamp of our last cut from a bare 429, forgotten (it is being undone)."""
        with self._lock:
            answers = self._ledgers.get(key)
            if answers is None or answers.cut is None:
                return None
            cut, answers.cut = answers.cut, None
            return cut.stamp

    def noise_to_tell(self, key: QuotaKey, *, now: float) -> PhantomFigures | None:
        """The last minute's noise, at most once a minute per ledger."""
        with self._lock:
            answers = self._ledgers.get(key)
            if answers is None or now - answers.told_at < WINDOW:
                return None
            self._trim(answers, now)
            if len(answers.noise_at) < TELL_AFTER:
                return None
            answers.told_at = now
            admitted = self._admitted(answers, now - WINDOW, now)
            return PhantomFigures(refused=len(answers.noise_at), admitted=admitted)

    def admitted(self, key: QuotaKey, *, now: float) -> int:
        """Successes answered in the last minute."""
        with self._lock:
            answers = self._ledgers.get(key)
            return 0 if answers is None else self._admitted(answers, now - WINDOW, now)
