"""The drivers: carry out a call's effects, in the calling thread or as an asyncio task.

Both drivers read one table, effect type -> (handler, how its outcome is told). A
handler does the effect through `_Ports`, the IO the driver was given: the sync
driver's ports sleep, reserve and send in this thread and return the value; the
async driver's return awaitables, and the async driver awaits them. So each effect is
handled once, and the only difference between the two drivers is the `await`.

How an outcome is told back to the engine:
- `_REPLY`: the value, or the exception the effect raised, as an `Outcome`;
- `_QUIET`: the attempt it belongs to is over, so a failing store must not turn its
  answer into an error: the exception is logged and the engine gets `Outcome()`;
- `_BARE`: nothing to tell (a `Wait`); an exception (a cancelled sleep) propagates.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from gemini_guard.call.effects import (
    Admit,
    AttemptPlan,
    CallInfo,
    Confirm,
    Outcome,
    Record,
    Release,
    Reserve,
    Send,
    Settle,
    Steps,
    Tally,
    Wait,
)
from gemini_guard.call.ports import Permit, QuotaGate
from gemini_guard.clock import Clock
from gemini_guard.diagnosis import Diagnosis
from gemini_guard.policies import Breaker

__all__ = ["run_async", "run_sync"]

T = TypeVar("T")

_log = logging.getLogger("gemini_guard")


@dataclass(frozen=True, slots=True)
class _Ports:
    """The IO one driver does the effects with: plain calls, or coroutine functions."""

    sleep: Callable[[float], Any]
    send: Callable[[AttemptPlan], Any]
    reserve: Callable[..., Any]
    confirm: Callable[[Permit], Any]
    settle: Callable[..., Any]
    tally: Callable[..., Any]
    admit: Callable[[Breaker, float], Any]
    record: Callable[[Breaker, float, Diagnosis | None, bool], Any]
    release: Callable[[Breaker], Any]


def _no_tally(**_: object) -> None:
    # Only a TallyingGate is ever sent a Tally (the engine checks).
    raise TypeError("this quota gate does not tally attempts")


def _sync_ports(clock: Clock, quota: QuotaGate, send: Callable[[AttemptPlan], Any]) -> _Ports:
    return _Ports(
        sleep=clock.sleep,
        send=send,
        reserve=quota.reserve,
        confirm=quota.confirm,
        settle=quota.settle,
        tally=getattr(quota, "tally", _no_tally),
        admit=lambda breaker, now: breaker.admit(now),
        record=lambda breaker, now, diagnosis, probe: breaker.record(now, diagnosis, probe=probe),
        release=lambda breaker: breaker.release_probe(),
    )


def _async_ports(
    clock: Clock, quota: QuotaGate, send: Callable[[AttemptPlan], Awaitable[Any]]
) -> _Ports:
    return _Ports(
        sleep=clock.asleep,
        send=send,
        reserve=quota.areserve,
        confirm=quota.aconfirm,
        settle=quota.asettle,
        tally=getattr(quota, "atally", _no_tally),
        admit=lambda breaker, now: breaker.aadmit(now),
        record=lambda breaker, now, diagnosis, probe: breaker.arecord(now, diagnosis, probe=probe),
        release=lambda breaker: breaker.arelease_probe(),
    )


def _reserve(effect: Reserve, io: _Ports) -> Any:
    if effect.exclude:  # only a pool's engine excludes: the gate is a pool
        return io.reserve(
            project=effect.project,
            model=effect.model,
            tokens=effect.tokens,
            exclude=effect.exclude,
        )
    return io.reserve(project=effect.project, model=effect.model, tokens=effect.tokens)


def _settle(effect: Settle, io: _Ports) -> Any:
    return io.settle(
        effect.permit,
        sent=effect.sent,
        input_tokens=effect.input_tokens,
        diagnosis=effect.diagnosis,
    )


def _tally(effect: Tally, io: _Ports) -> Any:
    return io.tally(
        project=effect.project,
        model=effect.model,
        tokens=effect.tokens,
        input_tokens=effect.input_tokens,
        diagnosis=effect.diagnosis,
        sent_at=effect.sent_at,
    )


def _record(effect: Record, io: _Ports) -> Any:
    return io.record(effect.breaker, effect.now, effect.diagnosis, effect.probe)


_REPLY: Final = 0
_QUIET: Final = 1
_BARE: Final = 2

# effect type -> (handler, how its outcome is told, what a _QUIET failure logs)
_HANDLERS: Final[dict[type, tuple[Callable[[Any, _Ports], Any], int, str]]] = {
    Send: (lambda effect, io: io.send(effect.plan), _REPLY, ""),
    Wait: (lambda effect, io: io.sleep(effect.seconds), _BARE, ""),
    Reserve: (_reserve, _REPLY, ""),
    Confirm: (lambda effect, io: io.confirm(effect.permit), _REPLY, ""),
    Settle: (_settle, _QUIET, "quota gate failed to settle a permit"),
    Tally: (_tally, _QUIET, "quota gate failed to tally an attempt"),
    Admit: (lambda effect, io: io.admit(effect.breaker, effect.now), _REPLY, ""),
    Record: (_record, _QUIET, "circuit breaker store failed to record an attempt"),
    Release: (
        lambda effect, io: io.release(effect.breaker),
        _QUIET,
        "circuit breaker store failed to release a probe",
    ),
}


def _handler(effect: object) -> tuple[Callable[[Any, _Ports], Any], int, str]:
    try:
        return _HANDLERS[type(effect)]
    except KeyError:
        raise TypeError(f"unknown effect {effect!r}") from None


def _told(how: int, value: Any) -> Outcome[Any] | None:
    return None if how == _BARE else Outcome(value=value)


def _failed(how: int, error: Exception, what: str) -> Outcome[Any]:
    if how == _REPLY:
        return Outcome(error=error)
    if how == _QUIET:
        _log.exception(what)  # called in the driver's `except`: the traceback is kept
        return Outcome()
    raise error


def run_sync(
    steps: Steps[T], *, clock: Clock, quota: QuotaGate, send: Callable[[AttemptPlan], T]
) -> tuple[T, CallInfo]:
    """Carry out a call's effects in the calling thread."""
    io = _sync_ports(clock, quota, send)
    reply: Outcome[Any] | None = None
    advance = steps.send
    while True:
        try:
            effect = advance(reply)
        except StopIteration as stop:
            result: tuple[T, CallInfo] = stop.value
            return result
        handle, how, what = _handler(effect)
        try:
            reply = _told(how, handle(effect, io))
        except Exception as exc:
            reply = _failed(how, exc, what)


async def run_async(
    steps: Steps[T],
    *,
    clock: Clock,
    quota: QuotaGate,
    send: Callable[[AttemptPlan], Awaitable[T]],
) -> tuple[T, CallInfo]:
    """Carry out a call's effects as an asyncio task."""
    io = _async_ports(clock, quota, send)
    reply: Outcome[Any] | None = None
    advance = steps.send
    while True:
        try:
            effect = advance(reply)
        except StopIteration as stop:
            result: tuple[T, CallInfo] = stop.value
            return result
        handle, how, what = _handler(effect)
        try:
            reply = _told(how, await handle(effect, io))
        except Exception as exc:
            reply = _failed(how, exc, what)
