"""What a running batch shows: done / failed / waiting for quota, rate and ETA.

`BatchProgress` is the runner's `Observer` and a telemetry hook (it counts requests
sent today and the quota waits inside the Guard). On a terminal it draws a rich live
bar; otherwise it prints a plain line every 5% and whenever requests start waiting
for quota, so logs stay readable. The ETA is `planner.finish_time`: it knows the
per-minute limits, the per-day limit and the next Pacific midnight.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from gemini_guard.batch.planner import Finish, finish_time
from gemini_guard.batch.result import BatchResult
from gemini_guard.clock import Clock
from gemini_guard.pacific import quota_day
from gemini_guard.telemetry import AttemptStarted, QuotaWaited
from gemini_guard.tiers import Limits

__all__ = ["WORDING", "BatchProgress", "Snapshot", "format_duration"]

# The English of every line the progress shows. A caller that speaks another language
# passes `words`, which maps each of these to its own text with the same fields.
LINE = (
    "{finished}/{total}  done {done}  failed {failed}  waiting for quota {waiting}  "
    "{rate:.1f}/min  ETA {eta}{bound}"
)
STATUS = (
    "[green]done {done}[/]  [red]failed {failed}[/]  [yellow]waiting {waiting}[/]  "
    "{rate:.1f}/min  ETA {eta}{bound}"
)
BOUND = " ({binding}-bound)"
WORDING = (LINE, STATUS, BOUND)

_RATE_WINDOW = 300.0  # clock seconds of completions the rate is measured over


def format_duration(seconds: float) -> str:
    """`42s`, `7m05s`, `3h12m`, `2d04h`; `?` when unknown."""
    if seconds != seconds or seconds == math.inf:
        return "?"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86_400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86_400}d{s % 86_400 // 3600:02d}h"


@dataclass(frozen=True, slots=True)
class Snapshot:
    total: int
    done: int
    failed: int
    waiting: int
    rate: float  # completions per clock minute, recent
    eta: Finish

    @property
    def finished(self) -> int:
        return self.done + self.failed

    def line(self, words: Callable[[str], str] = str, template: str = LINE) -> str:
        """The progress as one line; `words` translates the templates."""
        binding = self.eta.binding
        bound = words(BOUND).format(binding=binding) if binding != "none" else ""
        return words(template).format(
            finished=self.finished,
            total=self.total,
            done=self.done,
            failed=self.failed,
            waiting=self.waiting,
            rate=self.rate,
            eta=format_duration(self.eta.seconds),
            bound=bound,
        )


class BatchProgress:
    """Counts, rate and ETA of a batch; draws them live or as plain lines."""

    def __init__(
        self,
        *,
        total: int,
        clock: Clock,
        limits: Limits | None = None,
        tokens_per_request: float = 0.0,
        done: int = 0,
        failed: int = 0,
        live: bool = False,
        stream: IO[str] | None = None,
        words: Callable[[str], str] = str,
    ) -> None:
        self.total = total
        self._words = words
        self.done = done
        self.failed = failed
        self._clock = clock
        self._limits = limits or Limits()
        self._tokens = tokens_per_request
        self._waiting: dict[str, float] = {}  # request id or call id -> until (wall)
        self._completions: collections.deque[float] = collections.deque()
        self._started = clock.monotonic()
        self._sent_today = 0
        self._day = quota_day(clock.time())
        self._live = live
        self._stream = stream
        self._bar: Any = None
        self._task: Any = None
        self._last_bucket = -1
        self._was_waiting = False

    # -- Observer -----------------------------------------------------------------------

    def waiting(self, request_id: str, until: float | None) -> None:
        if until is None:
            self._waiting.pop(request_id, None)
        else:
            self._waiting[request_id] = until
        self._update()

    def finished(self, result: BatchResult) -> None:
        if result.ok:
            self.done += 1
        else:
            self.failed += 1
        self._completions.append(self._clock.monotonic())
        self._update()

    # -- telemetry hook -----------------------------------------------------------------

    def __call__(self, event: object) -> None:
        if isinstance(event, QuotaWaited) and event.wait > 0:
            self._waiting[event.call_id] = event.timestamp + event.wait
        elif isinstance(event, AttemptStarted):
            self._waiting.pop(event.call_id, None)
            day = quota_day(event.timestamp)
            if day != self._day:
                self._day, self._sent_today = day, 0
            self._sent_today += 1

    # -- figures ------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        now_wall = self._clock.time()
        now = self._clock.monotonic()
        while self._completions and self._completions[0] < now - _RATE_WINDOW:
            self._completions.popleft()
        span = min(_RATE_WINDOW, now - self._started)
        rate = len(self._completions) / span * 60 if span > 0 else 0.0
        waiting = sum(1 for until in self._waiting.values() if until > now_wall)
        remaining = self.total - self.done - self.failed
        eta = finish_time(
            remaining=remaining,
            limits=self._limits,
            now=now_wall,
            tokens_per_request=self._tokens,
            used_today=self._sent_today,
            observed_rate=rate / 60 if len(self._completions) >= 10 else None,
        )
        return Snapshot(self.total, self.done, self.failed, waiting, rate, eta)

    # -- display ------------------------------------------------------------------------

    def start(self) -> None:
        if not self._live:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._bar = Progress(
            TextColumn("[bold]batch[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            transient=False,
        )
        self._task = self._bar.add_task(
            "batch", total=self.total, completed=self.done + self.failed, status=""
        )
        self._bar.start()

    def stop(self) -> None:
        if self._bar is not None:
            self._update()
            self._bar.stop()
            self._bar = None

    def _update(self) -> None:
        if self._bar is not None:
            snap = self.snapshot()
            status = snap.line(self._words, STATUS)
            self._bar.update(self._task, completed=snap.finished, status=status)
            return
        if self._stream is None:
            return
        snap = self.snapshot()
        bucket = snap.finished * 20 // max(1, self.total)
        waiting = snap.waiting > 0
        if bucket != self._last_bucket or (waiting and not self._was_waiting):
            self._last_bucket = bucket
            self._stream.write(snap.line(self._words) + "\n")
            self._stream.flush()
        self._was_waiting = waiting
