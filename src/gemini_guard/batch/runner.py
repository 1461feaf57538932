"""Running many requests through a Guard: concurrently, paced by its quota gate.

    for result in run_batch(guard, requests, model="gemini-2.5-flash", concurrency=4): ...
    async for result in arun_batch(guard, requests, concurrency=8): ...

Every request ends as exactly one `BatchResult` (yielded as it completes, not in input
order): its text, usage, serving model and attempts, or its diagnosis. The Guard does
the retrying, the fallback and the pacing; this module adds what a batch needs on top:
a request that meets a spent per-day quota waits for the Pacific midnight and runs
then, instead of failing (a batch has no user waiting on one item).

Concurrency is how many requests are in flight; the quota gate decides when each is
sent, so more concurrency than the quota allows only parks requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, Protocol

from gemini_guard.batch.reader import BatchRequest, to_request
from gemini_guard.batch.result import BatchResult, ErrorInfo
from gemini_guard.diagnosis import diagnose
from gemini_guard.errors import Attempt, CallFailed, DailyQuotaExhausted, QuotaWait

if TYPE_CHECKING:
    from gemini_guard.guard import Guard

__all__ = [
    "DEFAULT_MODEL",
    "Observer",
    "RequestLike",
    "arun_batch",
    "arun_one",
    "run_batch",
    "run_one",
]

DEFAULT_MODEL = "gemini-2.5-flash"
RequestLike = BatchRequest | Mapping[str, Any]
_MIN_QUOTA_WAIT = 1.0  # clock seconds: never spin on a reset time already passed


class Observer(Protocol):
    """Told what the runner is doing (the progress display implements it)."""

    def waiting(self, request_id: str, until: float | None) -> None:
        """`request_id` waits for quota until wall time `until` (None: it stopped waiting)."""

    def finished(self, result: BatchResult) -> None:
        """`result` is final."""


class _NoObserver:
    def waiting(self, request_id: str, until: float | None) -> None:
        return None

    def finished(self, result: BatchResult) -> None:
        return None


def _requests(items: Iterable[RequestLike]) -> Iterator[BatchRequest]:
    for number, item in enumerate(items, start=1):
        if isinstance(item, BatchRequest):
            yield item
        else:
            try:
                yield to_request(item)
            except ValueError as exc:
                raise ValueError(f"request #{number}: {exc}") from None


def _sent(attempts: Iterable[Attempt]) -> int:
    return sum(1 for a in attempts if a.sent)


def _text(response: Any) -> str:
    """The answer's text: the first candidate's text parts, thoughts left out."""
    parts: list[str] = []
    for candidate in (getattr(response, "candidates", None) or ())[:1]:
        content = candidate.content
        for part in (content.parts if content else None) or ():
            if part.text and not part.thought:
                parts.append(part.text)
    return "".join(parts)


def _usage(response: Any) -> dict[str, int] | None:
    usage = getattr(response, "usage_metadata", None)
    if usage is None:
        return None
    raw = usage.model_dump(exclude_none=True) if hasattr(usage, "model_dump") else {}
    return {k: v for k, v in raw.items() if isinstance(v, int) and not isinstance(v, bool)}


def succeeded(request_id: str, response: Any, *, attempts: int, model: str | None) -> BatchResult:
    return BatchResult(
        id=request_id,
        ok=True,
        text=_text(response),
        usage=_usage(response),
        model=model or getattr(response, "model_version", None),
        attempts=attempts,
    )


def failed(request_id: str, exc: BaseException, *, attempts: int) -> BatchResult:
    """A failure line; the message is the diagnosis's (redacted when written)."""
    diagnosis = exc.diagnosis if isinstance(exc, CallFailed) else diagnose(exc)
    return BatchResult(
        id=request_id,
        ok=False,
        attempts=attempts,
        error=ErrorInfo(
            category=str(diagnosis.category),
            http_status=diagnosis.http_status,
            message=diagnosis.message,
            error=type(exc).__name__,
        ),
    )


def _quota_until(exc: CallFailed, now: float) -> float | None:
    if isinstance(exc, DailyQuotaExhausted):
        return max(exc.reset_at, now + _MIN_QUOTA_WAIT)
    if isinstance(exc, QuotaWait):
        return now + max(exc.wait, _MIN_QUOTA_WAIT)
    return None


def run_one(
    guard: Guard,
    request: BatchRequest,
    *,
    model: str,
    wait_for_quota: bool = True,
    observer: Observer | None = None,
) -> BatchResult:
    """One request through the guard, in this thread."""
    seen = observer or _NoObserver()
    attempts = 0
    while True:
        try:
            response = guard.models.generate_content(
                model=request.model or model,
                contents=request.contents,
                config=_config(request),
            )
        except CallFailed as exc:
            attempts += _sent(exc.attempts)
            until = _quota_until(exc, guard.clock.time()) if wait_for_quota else None
            if until is None:
                return failed(request.id, exc, attempts=attempts)
            seen.waiting(request.id, until)
            try:
                guard.clock.sleep(until - guard.clock.time())
            finally:
                # Told even when the wait is cut short (an interrupt): no request
                # stays shown as waiting after it stopped.
                seen.waiting(request.id, None)
            continue
        except Exception as exc:  # e.g. a config the SDK cannot build
            return failed(request.id, exc, attempts=attempts)
        return _served(request, response, attempts)


async def arun_one(
    guard: Guard,
    request: BatchRequest,
    *,
    model: str,
    wait_for_quota: bool = True,
    observer: Observer | None = None,
) -> BatchResult:
    """One request through the guard, as an asyncio task."""
    seen = observer or _NoObserver()
    attempts = 0
    while True:
        try:
            response = await guard.aio.models.generate_content(
                model=request.model or model,
                contents=request.contents,
                config=_config(request),
            )
        except CallFailed as exc:
            attempts += _sent(exc.attempts)
            until = _quota_until(exc, guard.clock.time()) if wait_for_quota else None
            if until is None:
                return failed(request.id, exc, attempts=attempts)
            seen.waiting(request.id, until)
            try:
                await guard.clock.asleep(until - guard.clock.time())
            finally:
                # Told even when the wait is cut short (cancelled): as in `run_one`.
                seen.waiting(request.id, None)
            continue
        except Exception as exc:
            return failed(request.id, exc, attempts=attempts)
        return _served(request, response, attempts)


def _served(request: BatchRequest, response: Any, earlier_attempts: int) -> BatchResult:
    """The result of an answered request: which model served it, after how many attempts."""
    from gemini_guard.call.info import guard_info

    info = guard_info(response)
    sent = info.attempt_count if info is not None else 1
    return succeeded(
        request.id,
        response,
        attempts=earlier_attempts + sent,
        model=info.model if info is not None else None,
    )


def _config(request: BatchRequest) -> Any:
    # The SDK validates the dict into a GenerateContentConfig (camelCase or snake_case).
    return dict(request.config) if request.config is not None else None


def _check_concurrency(concurrency: int) -> None:
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a whole number >= 1, got {concurrency!r}")


def run_batch(
    guard: Guard,
    requests: Iterable[RequestLike],
    *,
    model: str | None = None,
    concurrency: int = 4,
    wait_for_quota: bool = True,
    observer: Observer | None = None,
    stop: threading.Event | None = None,
) -> Iterator[BatchResult]:
    """Run `requests` through `guard` on `concurrency` threads; yield each result as it
    completes. `model`: for requests that name none (default: the guard's first model,
    else gemini-2.5-flash). `stop`: once set, no new request starts (those in flight
    finish). Closing the iterator early abandons what has not started."""
    _check_concurrency(concurrency)
    chosen = model or (guard.chain[0] if guard.chain else DEFAULT_MODEL)
    source = _requests(requests)
    seen = observer or _NoObserver()
    with ThreadPoolExecutor(concurrency, thread_name_prefix="gemini-guard-batch") as pool:
        running: set[Future[BatchResult]] = set()
        try:
            while True:
                while len(running) < concurrency and not (stop is not None and stop.is_set()):
                    request = next(source, None)
                    if request is None:
                        break
                    running.add(
                        pool.submit(
                            run_one,
                            guard,
                            request,
                            model=chosen,
                            wait_for_quota=wait_for_quota,
                            observer=seen,
                        )
                    )
                if not running:
                    return
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    result = future.result()
                    seen.finished(result)
                    yield result
        finally:
            for future in running:
                future.cancel()


async def arun_batch(
    guard: Guard,
    requests: Iterable[RequestLike],
    *,
    model: str | None = None,
    concurrency: int = 4,
    wait_for_quota: bool = True,
    observer: Observer | None = None,
    stop: asyncio.Event | None = None,
) -> AsyncIterator[BatchResult]:
    """`run_batch` for asyncio: `concurrency` tasks; yields results as they complete.
    Closing the iterator (or cancelling its consumer) cancels the requests in flight."""
    _check_concurrency(concurrency)
    chosen = model or (guard.chain[0] if guard.chain else DEFAULT_MODEL)
    source = _requests(requests)
    seen = observer or _NoObserver()
    results: asyncio.Queue[BatchResult | None] = asyncio.Queue()

    async def worker() -> None:
        while not (stop is not None and stop.is_set()):
            request = next(source, None)
            if request is None:
                return
            result = await arun_one(
                guard, request, model=chosen, wait_for_quota=wait_for_quota, observer=seen
            )
            await results.put(result)

    async def all_workers() -> None:
        # Not `gather`: on a worker's unexpected error it lets the others run on,
        # sending requests whose results nobody will read. Cancel them, then re-raise.
        tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            results.put_nowait(None)
        for task in tasks:
            if not task.cancelled() and (error := task.exception()) is not None:
                raise error

    supervisor = asyncio.create_task(all_workers())
    try:
        while True:
            item = await results.get()
            if item is None:
                break
            seen.finished(item)
            yield item
        await supervisor  # re-raises a worker's unexpected error
    finally:
        if not supervisor.done():
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
