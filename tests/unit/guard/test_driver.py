"""The drivers' one effect table: every effect has a handler, both drivers share it."""

from __future__ import annotations

import asyncio
import logging
import typing
from collections.abc import Generator
from typing import Any

import pytest

from gemini_guard.call import Outcome, Permit
from gemini_guard.call.driver import Ports, adrive, drive
from gemini_guard.call.effects import CacheEffect, Effect, Settle, Wait
from gemini_guard.clock import FakeClock


def test_every_effect_has_a_handler() -> None:
    from gemini_guard.call.driver import _HANDLERS

    kinds = set(typing.get_args(Effect)) | set(typing.get_args(CacheEffect))
    assert kinds == set(_HANDLERS)


def _unknown() -> Generator[Any, Outcome[Any] | None, None]:
    yield object()


def test_an_unknown_effect_is_a_type_error_in_both_drivers() -> None:
    with pytest.raises(TypeError, match="unknown effect"):
        drive(_unknown(), Ports())
    with pytest.raises(TypeError, match="unknown effect"):
        asyncio.run(adrive(_unknown(), Ports()))


def _settle_then_wait() -> Generator[Any, Outcome[Any] | None, Outcome[Any] | None]:
    told = yield Settle(Permit("p", "m", 1, 0.0), sent=True)
    yield Wait(2.0)
    return told


def _broken_settle(*_: object, **__: object) -> None:
    raise OSError("store down")


async def _abroken_settle(*_: object, **__: object) -> None:
    raise OSError("store down")


def test_a_failing_settle_is_logged_and_the_steps_go_on_in_both_drivers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    caplog.set_level(logging.ERROR, logger="gemini_guard")
    told = drive(_settle_then_wait(), Ports(sleep=clock.sleep, settle=_broken_settle))
    assert told == Outcome()
    assert clock.monotonic() == pytest.approx(2.0)

    atold = asyncio.run(
        adrive(_settle_then_wait(), Ports(sleep=clock.asleep, settle=_abroken_settle))
    )
    assert atold == Outcome()
    assert clock.monotonic() == pytest.approx(4.0)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["quota gate failed to settle a permit"] * 2


def test_a_failing_wait_propagates() -> None:
    def sleep(_: float) -> None:
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        drive(_settle_then_wait(), Ports(sleep=sleep, settle=lambda *a, **k: None))
