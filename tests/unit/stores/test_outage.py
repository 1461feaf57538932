"""The outage policy every Redis store uses: one warning, a pause, one line when back."""

from __future__ import annotations

import pytest

from gemini_guard.clock import FakeClock
from gemini_guard.errors import StoreError
from gemini_guard.stores.outage import Outage


def _outage(**options: object) -> Outage:
    return Outage(
        "the Redis thing at redis://h/0",
        meanwhile="things are local",
        resumed="things are shared",
        **options,  # type: ignore[arg-type]
    )


def test_degrade_warns_once_pauses_for_retry_after_and_says_once_when_back() -> None:
    clock = FakeClock()
    outage = _outage(retry_after=5.0)
    assert not outage.skipping(clock.monotonic())
    warning = outage.failed(ConnectionError("refused"), clock.monotonic())
    assert warning == (
        "the Redis thing at redis://h/0 does not answer (refused); it is not asked again "
        "for 5 s: things are local until it answers"
    )
    assert outage.down
    clock.advance(4.9)
    assert outage.skipping(clock.monotonic())
    clock.advance(0.1)
    assert not outage.skipping(clock.monotonic())  # asked again after the pause
    assert outage.failed(ConnectionError("refused"), clock.monotonic()) is None  # said once
    clock.advance(1.0)
    assert outage.skipping(clock.monotonic())  # a new pause from the second failure
    clock.advance(4.0)
    assert outage.answered() == "the Redis thing at redis://h/0 answers again: things are shared"
    assert outage.answered() is None
    assert not outage.down
    assert not outage.skipping(clock.monotonic())


def test_fail_raises_a_store_error_naming_the_store_and_never_pauses() -> None:
    outage = _outage(policy="fail")
    cause = ConnectionError("refused")
    with pytest.raises(StoreError, match=r"redis://h/0 is unreachable: refused") as caught:
        outage.failed(cause, 0.0)
    assert caught.value.__cause__ is cause
    assert not outage.down
    assert not outage.skipping(0.0)
