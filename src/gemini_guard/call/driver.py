"""The drivers: carry out a call's effects, in the calling thread or as an asyncio task.

Both drivers (`drive`, `adrive`) read one table, effect type -> (handler, how its
outcome is told). A handler does the effect through `Ports`, the IO the driver was
given: the sync ports sleep, reserve and send in this thread and return the value;
the async ports return awaitables, and the async driver awaits them. So each effect
is handled once, and the only difference between the two drivers is the `await`.
`run_sync` / `run_async` drive the engine's steps; the cache stage drives its own.

How an outcome is told back to the engine:
- `_REPLY`: the value, or the exception the effect raised, as an `Outcome`;
- `_QUIET`: the attempt it belongs to is over, so a failing store must not turn its
  answer into an error: the exception is logged and the engine gets `Outcome()`;
- `_VALUE`: the value as an `Outcome`; an exception propagates out of the call;
- `_BARE`: nothing to tell (a `Wait`); an exception (a cancelled sleep) propagates.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from gemini_guard.call.effects import (
    Admit,
    AttemptPlan,
    Call,
    CallInfo,
    Coalesce,
    Confirm,
    Keep,
    Lookup,
    Outcome,
    Prepare,
    Record,
    Release,
    Reserve,
    Send,
    Settle,
    Steps,
    Tally,
    Vouch,
    Wait,
)
from gemini_guard.call.ports import Permit, QuotaGate
from gemini_guard.clock import Clock
from gemini_guard.diagnosis import Diagnosis
from gemini_guard.policies import Breaker

__all__ = ["Ports", "adrive", "drive", "run_async", "run_sync"]

T = TypeVar("T")
R = TypeVar("R")

_log = logging.getLogger("gemini_guard")


def _absent(*_: object, **__: object) -> Any:
    raise TypeError("this driver was given no port for the effect")


@dataclass(slots=True)  # not frozen: built for every call, and frozen costs 4x
class Ports:
    """The IO one driver does the effects with: plain calls, or coroutine functions."""

    sleep: Callable[[float], Any] = _absent
    send: Callable[[AttemptPlan], Any] = _absent
    reserve: Callable[..., Any] = _absent
    confirm: Callable[[Permit], Any] = _absent
    settle: Callable[..., Any] = _absent
    tally: Callable[..., Any] = _absent
    admit: Callable[[Breaker, float], Any] = _absent
    record: Callable[[Breaker, float, Diagnosis | None, bool], Any] = _absent
    release: Callable[[Breaker], Any] = _absent
    # The cache stage's.
    lookup: Callable[..., Any] = _absent
    keep: Callable[..., Any] = _absent
    accepted: Callable[[Any], Any] = _absent
    refused: Callable[[Any, BaseException], Any] = _absent
    prepare: Callable[[Any, str, Any, Any], Any] = _absent
    call: Callable[..., Any] = _absent
    # (flight, steps, these ports) -> (the steps' result, shared)
    coalesce: Callable[[str, Any, Ports], Any] = _absent


# A breaker's side of the ports (module functions: nothing to build per call).
def _admit(breaker: Breaker, now: float) -> Any:
    return breaker.admit(now)


def _aadmit(breaker: Breaker, now: float) -> Any:
    return breaker.aadmit(now)


def _record_outcome(breaker: Breaker, now: float, diagnosis: Diagnosis | None, probe: bool) -> Any:
    return breaker.record(now, diagnosis, probe=probe)


def _arecord_outcome(breaker: Breaker, now: float, diagnosis: Diagnosis | None, probe: bool) -> Any:
    return breaker.arecord(now, diagnosis, probe=probe)


def _release(breaker: Breaker) -> Any:
    return breaker.release_probe()


def _arelease(breaker: Breaker) -> Any:
    return breaker.arelease_probe()


def _sync_ports(clock: Clock, quota: QuotaGate, send: Callable[[AttemptPlan], Any]) -> Ports:
    return Ports(
        sleep=clock.sleep,
        send=send,
        reserve=quota.reserve,
        confirm=quota.confirm,
        settle=quota.settle,
        # Only a TallyingGate is ever sent a Tally (the engine checks).
        tally=getattr(quota, "tally", _absent),
        admit=_admit,
        record=_record_outcome,
        release=_release,
    )


def _async_ports(
    clock: Clock, quota: QuotaGate, send: Callable[[AttemptPlan], Awaitable[Any]]
) -> Ports:
    return Ports(
        sleep=clock.asleep,
        send=send,
        reserve=quota.areserve,
        confirm=quota.aconfirm,
        settle=quota.asettle,
        tally=getattr(quota, "atally", _absent),
        admit=_aadmit,
        record=_arecord_outcome,
        release=_arelease,
    )


def _counted(requests: int) -> dict[str, Any]:
    # Told only for a call the server counts as several (a batch of embeddings): a
    # gate that never counts batches need not know the keyword.
    return {} if requests == 1 else {"requests": requests}


def _reserve(effect: Reserve, io: Ports) -> Any:
    extra = _counted(effect.requests)
    if effect.exclude:  # only a pool's engine excludes: the gate is a pool
        extra["exclude"] = effect.exclude
    return io.reserve(project=effect.project, model=effect.model, tokens=effect.tokens, **extra)


def _settle(effect: Settle, io: Ports) -> Any:
    return io.settle(
        effect.permit,
        sent=effect.sent,
        input_tokens=effect.input_tokens,
        diagnosis=effect.diagnosis,
    )


def _tally(effect: Tally, io: Ports) -> Any:
    return io.tally(
        project=effect.project,
        model=effect.model,
        tokens=effect.tokens,
        input_tokens=effect.input_tokens,
        diagnosis=effect.diagnosis,
        sent_at=effect.sent_at,
        **_counted(effect.requests),
    )


def _record(effect: Record, io: Ports) -> Any:
    return io.record(effect.breaker, effect.now, effect.diagnosis, effect.probe)


def _vouch(effect: Vouch, io: Ports) -> Any:
    if effect.error is None:
        return io.accepted(effect.scope)
    return io.refused(effect.scope, effect.error)


_REPLY: Final = 0
_QUIET: Final = 1
_VALUE: Final = 2
_BARE: Final = 3

# effect type -> (handler, how its outcome is told, what a _QUIET failure logs)
_HANDLERS: Final[dict[type, tuple[Callable[[Any, Ports], Any], int, str]]] = {
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
    Lookup: (lambda effect, io: io.lookup(effect.key, scope=effect.scope), _VALUE, ""),
    Keep: (
        lambda effect, io: io.keep(effect.key, effect.entry, effect.ttl, stream=effect.stream),
        _VALUE,
        "",
    ),
    Vouch: (_vouch, _VALUE, ""),
    Prepare: (
        lambda effect, io: io.prepare(effect.context, effect.model, effect.contents, effect.config),
        _VALUE,
        "",
    ),
    Call: (
        lambda effect, io: io.call(
            model=effect.model, contents=effect.contents, config=effect.config
        ),
        _REPLY,
        "",
    ),
    Coalesce: (lambda effect, io: io.coalesce(effect.flight, effect.steps, io), _VALUE, ""),
}


def _handler(effect: object) -> tuple[Callable[[Any, Ports], Any], int, str]:
    found = _HANDLERS.get(type(effect))
    if found is None:
        raise TypeError(f"unknown effect {effect!r}")
    return found


def _failed(how: int, error: Exception, what: str) -> Outcome[Any]:
    if how == _REPLY:
        return Outcome(error=error)
    if how == _QUIET:
        _log.exception(what)  # called in the driver's `except`: the traceback is kept
        return Outcome()
    raise error


def drive(steps: Generator[Any, Outcome[Any] | None, R], io: Ports) -> R:
    """Carry out the effects of `steps` with `io` in the calling thread."""
    reply: Outcome[Any] | None = None
    advance = steps.send
    while True:
        try:
            effect = advance(reply)
        except StopIteration as stop:
            result: R = stop.value
            return result
        handle, how, what = _handler(effect)
        try:
            value = handle(effect, io)
        except Exception as exc:
            reply = _failed(how, exc, what)
        else:
            reply = None if how == _BARE else Outcome(value=value)


async def adrive(steps: Generator[Any, Outcome[Any] | None, R], io: Ports) -> R:
    """Carry out the effects of `steps` with `io` (coroutine functions) as an asyncio task."""
    reply: Outcome[Any] | None = None
    advance = steps.send
    while True:
        try:
            effect = advance(reply)
        except StopIteration as stop:
            result: R = stop.value
            return result
        handle, how, what = _handler(effect)
        try:
            value = await handle(effect, io)
        except Exception as exc:
            reply = _failed(how, exc, what)
        else:
            reply = None if how == _BARE else Outcome(value=value)


def run_sync(
    steps: Steps[T], *, clock: Clock, quota: QuotaGate, send: Callable[[AttemptPlan], T]
) -> tuple[T, CallInfo]:
    """Carry out a call's effects in the calling thread."""
    return drive(steps, _sync_ports(clock, quota, send))


async def run_async(
    steps: Steps[T],
    *,
    clock: Clock,
    quota: QuotaGate,
    send: Callable[[AttemptPlan], Awaitable[T]],
) -> tuple[T, CallInfo]:
    """Carry out a call's effects as an asyncio task."""
    return await adrive(steps, _async_ports(clock, quota, send))
