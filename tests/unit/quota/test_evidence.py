"""The rules that tell a bare 429 that fits a limit from one that does not."""

from __future__ import annotations

from gemini_guard.quota.evidence import PHANTOM_HOLD, Judgement, RateEvidence
from gemini_guard.quota.stores.base import QuotaKey

KEY = QuotaKey("p", "gemini-2.5-pro")


def answers(ok: int, *, start: float = 0.0, every: float = 1.0) -> RateEvidence:
    """`ok` successes, one sent and answered each `every` seconds (no overlap)."""
    evidence = RateEvidence()
    for i in range(ok):
        evidence.sent(KEY)
        evidence.succeeded(KEY, sent_at=start + i * every, now=start + i * every + 0.5)
    return evidence


def judge(
    evidence: RateEvidence, at: float, *, ceiling: int | None = 150, paced: int = 150
) -> Judgement:
    evidence.sent(KEY)
    return evidence.judge(KEY, sent_at=at, now=at + 0.5, ceiling=ceiling, paced=paced, decrease=0.7)


def test_a_429_below_a_level_just_admitted_is_noise_and_holds_for_a_while() -> None:
    evidence = answers(40)  # the server admitted 40 in the minute
    # Then 30 of those leave the window, and a 429 comes with 10 in it.
    verdict = judge(evidence, 69.0)
    assert (verdict.limit, verdict.why) == (False, "contradicted")
    assert verdict.level < verdict.floor
    # For a minute after, even a 429 at the top is not taken for a limit.
    for _ in range(25):
        evidence.sent(KEY)  # in flight: the server may hold them too
    assert judge(evidence, 70.0, paced=12).why == "held"
    late = judge(evidence, 70.0 + PHANTOM_HOLD, ceiling=None, paced=30)
    assert late.why == "near"


def test_a_429_at_a_small_share_of_the_ceiling_is_noise() -> None:
    verdict = judge(answers(3), 3.0)  # 4 of 150 (with itself in flight)
    assert (verdict.limit, verdict.why) == (False, "small_share")


def test_a_429_as_our_rate_reaches_the_level_paced_by_fits_a_limit() -> None:
    verdict = judge(answers(110, every=0.5), 55.0)
    assert verdict.limit
    assert verdict.why == "near"
    assert verdict.floor == 110


def test_a_429_far_below_the_level_fits_only_as_a_minute_long_wall() -> None:
    # The server enforces 20 where 150 are paced by: a request a second, admitted
    # while fewer than 20 were admitted in the minute before it, refused otherwise.
    evidence = RateEvidence()
    admitted: list[float] = []
    verdicts = []
    for second in range(100):
        at = float(second)
        if len([t for t in admitted if t > at - 60.0]) < 20:
            admitted.append(at)
            evidence.sent(KEY)
            evidence.succeeded(KEY, sent_at=at, now=at + 0.5)
        else:
            verdicts.append((at, judge(evidence, at, paced=150)))
    whys = [v.why for _, v in verdicts]
    assert whys[0] == "far_below"
    walls = [(at, v) for at, v in verdicts if v.why == "wall"]
    at, wall = walls[0]
    assert at == 80.0  # a minute after the first refusal, at 20 s
    assert (wall.limit, wall.to) == (True, 20)
    assert "contradicted" not in whys


def test_noise_at_a_steady_rate_is_no_wall() -> None:
    # A 429 and three successes, again and again: a quarter refused, not nine in ten.
    evidence = RateEvidence()
    whys = []
    for i in range(120):
        at = float(i)
        if i % 4 == 0:
            whys.append(judge(evidence, at, ceiling=None, paced=200).why)
        else:
            evidence.sent(KEY)
            evidence.succeeded(KEY, sent_at=at, now=at + 0.5)
    assert "wall" not in whys


def test_a_success_at_the_level_a_cut_was_refused_at_undoes_it() -> None:
    evidence = answers(30)
    evidence.cut_made(KEY, now=30.0, level=31, stamp=30.0, to=105)
    assert evidence.succeeded(KEY, sent_at=31.0, now=31.5) is None  # admitted at 30
    evidence.sent(KEY)
    assert evidence.succeeded(KEY, sent_at=32.5, now=33.0) == 30.0  # admitted at 31
    assert evidence.take_cut(KEY) is None  # undone once
    assert judge(evidence, 34.0, paced=40).why == "held"
