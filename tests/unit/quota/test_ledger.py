"""The pure window math: earliest starts, the slot book, Pacific days."""

from __future__ import annotations

import datetime as dt

import pytest

from gemini_guard.quota.ledger import (
    MAX_FLIGHT,
    Budget,
    DayBook,
    Granted,
    Refused,
    SlotBook,
    earliest_start,
)

UTC = dt.UTC


@pytest.mark.parametrize(
    ("ends", "tokens_of", "budget", "tokens", "not_before", "expected"),
    [
        # Room left: start at once.
        ([0.0, 10.0], [0, 0], Budget(requests=3), 0, 20.0, 20.0),
        # Full: the oldest leaves at 0 + 60.
        ([0.0, 10.0, 15.0], [0, 0, 0], Budget(requests=3), 0, 20.0, 60.0),
        # Two over (queued): the second oldest must leave too.
        ([0.0, 10.0, 15.0, 60.0], [0, 0, 0, 0], Budget(requests=3), 0, 20.0, 70.0),
        # Expired slots at the front do not count.
        ([-100.0, 0.0, 10.0], [0, 0, 0], Budget(requests=2), 0, 20.0, 60.0),
        # Tokens: 700 + 400 > 1000, so wait for the 700 to leave.
        ([5.0, 9.0], [700, 200], Budget(tokens=1000), 400, 10.0, 65.0),
        # Tokens fit exactly.
        ([5.0, 9.0], [700, 200], Budget(tokens=1000), 100, 10.0, 10.0),
        # Bigger than the whole budget: waits for an empty window.
        ([5.0, 9.0], [1, 1], Budget(tokens=10), 50, 10.0, 69.0),
        # Requests and tokens: the later of the two.
        ([0.0, 30.0], [900, 10], Budget(requests=2, tokens=1000), 200, 40.0, 60.0),
        ([0.0, 30.0], [10, 900], Budget(requests=5, tokens=1000), 200, 40.0, 90.0),
        # A custom period.
        ([0.0], [0], Budget(requests=1, period=1.0), 0, 0.5, 1.0),
    ],
)
def test_earliest_start(
    ends: list[float],
    tokens_of: list[int],
    budget: Budget,
    tokens: int,
    not_before: float,
    expected: float,
) -> None:
    start = earliest_start(
        ends,
        tokens_of,
        total_tokens=sum(tokens_of),
        not_before=not_before,
        budget=budget,
        tokens=tokens,
    )
    assert start == expected


def _book(book: SlotBook, now: float, budget: Budget, tokens: int = 0, **kw: object) -> Granted:
    result = book.book(
        slot_id=f"s{len(book)}-{now}",
        now=now,
        budget=budget,
        tokens=tokens,
        allowance=0.0,
        deadline=kw.get("deadline"),  # type: ignore[arg-type]
    )
    assert isinstance(result, Granted)
    return result


def test_book_is_fifo_and_memory_is_bounded() -> None:
    book = SlotBook()
    budget = Budget(requests=2)
    starts = [_book(book, 0.0, budget).start for _ in range(6)]
    assert starts == [0.0, 0.0, 60.0, 60.0, 120.0, 120.0]
    _book(book, 10_000.0, budget)
    # Never answered, they were held MAX_FLIGHT, then left the window and the book.
    assert len(book) == 1
    assert len(book.in_flight) == 1


def test_book_refuses_past_the_deadline_without_booking() -> None:
    book = SlotBook()
    budget = Budget(requests=1)
    _book(book, 0.0, budget)
    refused = book.book(slot_id="x", now=0.0, budget=budget, tokens=0, allowance=0.0, deadline=59.0)
    assert refused == Refused("wait", 60.0)
    assert len(book) == 1


def test_settle_moves_the_end_and_corrects_tokens() -> None:
    book = SlotBook()
    budget = Budget(tokens=100)
    granted = _book(book, 0.0, budget, tokens=80)
    book.settle(
        slot_id=granted.slot_id, end_hint=0.0, day=granted.day, sent=True, end=4.0, tokens=30
    )
    assert (list(book.ends), book.tokens, book.total_tokens) == ([4.0], [30], 30)
    assert book.days.days[granted.day][:2] == [1, 30]
    book.settle(
        slot_id=granted.slot_id, end_hint=4.0, day=granted.day, sent=False, end=5.0, tokens=30
    )
    assert (len(book), book.total_tokens) == (0, 0)
    assert book.days.days[granted.day][:2] == [0, 0]


def test_day_of_caches_the_whole_pacific_day_including_dst() -> None:
    days = DayBook()
    spring = dt.datetime(2026, 3, 8, 8, 0, tzinfo=UTC).timestamp()  # 00:00 PST
    ordinal, end = days.day_of(spring + 3600)
    assert end == dt.datetime(2026, 3, 9, 7, 0, tzinfo=UTC).timestamp()  # 23 h later
    assert days.day_of(spring) == (ordinal, end)
    assert days.day_of(end - 0.001) == (ordinal, end)
    assert days.day_of(end)[0] == ordinal + 1


def test_day_book_refuses_with_the_reset_time() -> None:
    days = DayBook()
    days.add(10, 3, 50)
    assert days.check(10, 123.0, Budget(day_requests=4), 0) is None
    assert days.check(10, 123.0, Budget(day_requests=3), 0) == Refused(
        "day", 123.0, "3 of 3 requests used"
    )
    assert days.check(10, 123.0, Budget(day_tokens=60), 11) == Refused(
        "day", 123.0, "50 of 60 tokens used"
    )
    days.mark_spent(10)
    refused = days.check(10, 123.0, Budget(), 0)
    assert refused is not None
    assert refused.why == "day"


@pytest.mark.parametrize(
    ("allowance_a", "budget"),
    [
        (0.0, Budget()),  # unlimited (tier "auto" before anything is learned)
        (0.0, Budget(requests=2, tokens=1000)),  # room for the newest on top of the rest
        (9.0, Budget(requests=5)),  # the previous slot ends later: the general path
    ],
)
def test_confirm_and_settle_of_the_newest_slot(allowance_a: float, budget: Budget) -> None:
    # The newest slot is updated where it stands when it stays last; either way
    # the book must end up exactly as the rule says.
    book = SlotBook()
    for slot_id, now, allowance in (("a", 0.0, allowance_a), ("b", 0.5, 0.0)):
        granted = book.book(
            slot_id=slot_id, now=now, budget=budget, tokens=10, allowance=allowance, deadline=None
        )
        assert isinstance(granted, Granted)
    (day,) = book.days.days
    end_a = allowance_a
    if allowance_a == 0.0:  # answered, else held in flight up to the confirm below
        end_a = 0.2
        book.settle(slot_id="a", end_hint=0.0, day=day, sent=True, end=end_a, tokens=10)
    wait = book.confirm(slot_id="b", end_hint=0.5, now=0.7, budget=budget, allowance=0.2)
    assert wait == 0.0
    end_b = 0.7 + 0.2
    assert list(book.ends) == sorted([end_a, end_b])
    assert book.ids == (["a", "b"] if end_a < end_b else ["b", "a"])
    assert book.in_flight["b"] == (0.5 + MAX_FLIGHT, 0.7)  # the give-up deadline is kept
    assert (end_b, "b", end_b) in book.flight_ends  # looked at again when it is due
    book.settle(slot_id="b", end_hint=end_b, day=day, sent=True, end=1.5, tokens=13)
    assert list(book.ends) == sorted([end_a, 1.5])
    assert book.tokens[book.ids.index("b")] == 13
    assert book.total_tokens == 23
    assert "b" not in book.in_flight
    assert book.days.days[day][:2] == [2, 23]


def test_earliest_start_counts_nothing_before_first() -> None:
    # The first two slots have left the book (a SlotBook's head): not counted, even
    # though a plain read of the lists would see four slots in a 3-request window.
    ends, tokens_of = [1.0, 2.0, 30.0, 40.0], [500, 500, 10, 10]
    budget = Budget(requests=3, tokens=100)
    start = earliest_start(
        ends, tokens_of, total_tokens=20, not_before=50.0, budget=budget, tokens=50, first=2
    )
    assert start == 50.0
    # The same lists counted from the start: full until the second slot leaves.
    full = earliest_start(
        ends, tokens_of, total_tokens=1020, not_before=50.0, budget=budget, tokens=50
    )
    assert full == 2.0 + 60.0


class _EagerBook(SlotBook):
    """The book as it was: slots that leave are cut from the lists at once."""

    def drop_expired(self, now: float, period: float) -> None:
        super().drop_expired(now, period)
        self._compact()


def _live(book: SlotBook) -> tuple[list[float], list[str], list[int], int]:
    first = book.head
    return list(book.ends[first:]), book.ids[first:], book.tokens[first:], book.total_tokens


def test_a_busy_book_answers_as_if_every_slot_that_left_were_cut_at_once() -> None:
    import random

    rng = random.Random(7)
    budget = Budget(requests=300, tokens=300 * 120)
    lazy, eager = SlotBook(), _EagerBook()
    now = 0.0
    open_slots: list[tuple[str, float, int]] = []
    most_left = 0
    for step in range(6000):
        now += rng.choice((0.05, 0.1, 0.2, 0.5))
        tokens = rng.randint(1, 200)
        slot_id = f"s{step}"
        answers = [
            book.book(
                slot_id=slot_id, now=now, budget=budget, tokens=tokens, allowance=2.0, deadline=None
            )
            for book in (lazy, eager)
        ]
        assert answers[0] == answers[1]
        granted = answers[0]
        assert isinstance(granted, Granted)
        open_slots.append((slot_id, granted.start + 2.0, granted.day))
        if len(open_slots) > 5 or rng.random() < 0.3:
            slot_id, end_hint, day = open_slots.pop(rng.randrange(len(open_slots)))
            sent = rng.random() < 0.9
            late = rng.choice((0.0, 1.0, 90.0))  # 90 s: an answer slower than the window
            waits = [
                book.confirm(
                    slot_id=slot_id, end_hint=end_hint, now=now, budget=budget, allowance=2.0
                )
                for book in (lazy, eager)
            ]
            assert waits[0] == waits[1]
            for book in (lazy, eager):
                book.settle(
                    slot_id=slot_id,
                    end_hint=now + 2.0,
                    day=day,
                    sent=sent,
                    end=now + 1.0 - late,
                    tokens=tokens,
                )
        assert _live(lazy) == _live(eager)
        assert len(lazy) == len(eager)
        # Memory stays bounded: what has left is at most a third of what is in the
        # book (cut once it is a quarter of the lists), or fewer than 64 slots.
        assert lazy.head < max(len(lazy) / 3 + 1, 64)
        most_left = max(most_left, lazy.head)
    assert most_left >= 48  # the run did count slots out long before cutting them


class _NoScan(list[str]):
    """A book's ids that fail the test if the window is searched from end to end."""

    def index(self, *args: object) -> int:
        raise AssertionError("a slot was looked for in the whole window")


def test_a_moved_slot_is_found_where_it_ends_now_not_by_scanning_the_window() -> None:
    # As the limiter calls the book: confirm and settle name the slot by the end it
    # was booked at, but confirm moved it (sent later than planned), and a late
    # answer moved it again (held in flight). Each must still be found where it
    # stands: a scan of a tier-3 window (tens of thousands of slots) costs 0.1 ms.
    import random

    rng = random.Random(3)
    book = SlotBook()
    book.ids = _NoScan()
    budget = Budget(requests=100_000)
    now, booked_end, confirmed = 0.0, {}, set()
    open_slots: list[tuple[str, int]] = []
    for step in range(3000):
        now += rng.choice((0.0, 0.001, 0.05))
        slot_id = f"s{step}"
        granted = book.book(
            slot_id=slot_id, now=now, budget=budget, tokens=5, allowance=0.2, deadline=None
        )
        assert isinstance(granted, Granted)
        booked_end[slot_id] = granted.start + 0.2
        open_slots.append((slot_id, granted.day))
        rng.shuffle(open_slots)
        if len(open_slots) > 100:
            slot_id, day = open_slots.pop()
            if slot_id not in confirmed:
                wait = book.confirm(
                    slot_id=slot_id,
                    end_hint=booked_end[slot_id],
                    now=now,
                    budget=budget,
                    allowance=0.3,
                )
                assert wait == 0.0
            book.settle(
                slot_id=slot_id,
                end_hint=booked_end[slot_id],
                day=day,
                sent=True,
                end=now,
                tokens=7,
            )
        for slot_id, _ in open_slots[:3]:
            if slot_id not in confirmed:
                confirmed.add(slot_id)
                book.confirm(
                    slot_id=slot_id,
                    end_hint=booked_end[slot_id],
                    now=now,
                    budget=budget,
                    allowance=0.3,
                )
    assert len(book) == 3000  # nothing lost nor counted twice
    assert len(book.in_flight) == 100
    assert book.total_tokens == 2900 * 7 + 100 * 5
    assert list(book.ends) == sorted(book.ends)


def test_recording_an_answered_slot_is_booking_and_settling_it_under_a_shared_id() -> None:
    # Attempts sent without a permit (tier "auto" before any limit is known) are
    # recorded once answered, in batches. No caller names them again, so the book
    # keeps them under one id: at thousands of requests a second, an id per slot was
    # most of the memory of the minute's window.
    import random

    rng = random.Random(5)
    recorded, booked = SlotBook(), SlotBook()
    now = 0.0
    for step in range(2000):
        now += rng.choice((0.0, 0.01, 0.4))
        start = now - rng.choice((0.0, 0.2, 3.0))  # batches arrive out of order too
        end = start + rng.choice((0.0, 0.5))
        tokens = rng.randrange(1, 900)
        if step == 1950:  # the server said the day is spent: nothing more counts
            for book in (recorded, booked):
                book.days.mark_spent(book.days.day_of(now)[0])
        recorded.record(start=start, end=end, tokens=tokens, period=60.0)
        granted = booked.book(
            slot_id=f"s{step}",
            now=start,
            budget=Budget(),
            tokens=tokens,
            allowance=0.0,
            deadline=None,
        )
        if isinstance(granted, Granted):
            booked.settle(
                slot_id=f"s{step}",
                end_hint=granted.start,
                day=granted.day,
                sent=True,
                end=end,
                tokens=tokens,
            )
    assert list(recorded.ends) == list(booked.ends)
    assert recorded.tokens == booked.tokens
    assert (recorded.head, recorded.total_tokens) == (booked.head, booked.total_tokens)
    assert recorded.days.days == booked.days.days
    assert recorded.last_start == booked.last_start
    assert not recorded.in_flight
    assert not recorded.flight_at
    assert len(recorded) > 100
    assert len({id(slot_id) for slot_id in recorded.ids}) == 1
