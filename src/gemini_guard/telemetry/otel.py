"""OpenTelemetry traces from a Guard's events (the `otel` extra).

    guard = Guard(..., hooks=[OtelTracing()])      # the global TracerProvider

One span per guarded call (`gen_ai.generate_content {model}`) with one child span
per request sent. Attributes follow the GenAI semantic conventions —
`gen_ai.system`, `gen_ai.operation.name`, `gen_ai.request.model`,
`gen_ai.response.model`, `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`,
`error.type`, `http.response.status_code` — plus ours under `gemini_guard.*`:
`category`, `retry.delay`, `retry.reason`, `fallback.reason`, `fallback.to_model`,
`attempts`, `cost_usd`, `usage.thinking_tokens`, `usage.cached_tokens`.

Spans take their times from the events (the Guard's clock), so a FakeClock run makes
a readable trace too. A call's span ends when its usage is known (the `CallUsage`
right after a success); at most `max_open` calls are kept open, the oldest ended first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gemini_guard.telemetry.events import (
    AttemptFailed,
    AttemptStarted,
    CallFailedEvent,
    CallSucceeded,
    CallUsage,
    Event,
    FallbackTaken,
    RetryScheduled,
)

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = ["OtelTracing"]


def _ns(wall: float) -> int:
    return int(wall * 1_000_000_000)


@dataclass(slots=True)
class _Call:
    span: Span
    requested: str
    attempt: Span | None = None
    ended_at: float | None = None  # the call's end, once known (waiting for its usage)
    extra: dict[str, Any] = field(default_factory=dict)


class OtelTracing:
    """A telemetry sink that turns a Guard's events into OpenTelemetry spans."""

    reads_text = True  # error messages go into span status descriptions: scrubbed

    def __init__(
        self, *, tracer_provider: TracerProvider | None = None, max_open: int = 1024
    ) -> None:
        try:
            from opentelemetry import trace
        except ImportError:
            raise ImportError(
                "traces need OpenTelemetry: pip install 'gemini-guard[otel]'"
            ) from None
        self._trace = trace
        self.tracer: Tracer = trace.get_tracer("gemini_guard", tracer_provider=tracer_provider)
        self._calls: OrderedDict[str, _Call] = OrderedDict()
        self._max_open = max_open
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        if not event.call_id:
            return  # notices outside any call
        with self._lock:
            self._on(event)

    def _on(self, event: Event) -> None:
        call = self._calls.get(event.call_id)
        if isinstance(event, AttemptStarted):
            if call is None:
                call = self._start_call(event)
            self._end_attempt(call, event.timestamp)
            call.attempt = self.tracer.start_span(
                f"gen_ai.attempt {event.model}",
                context=self._trace.set_span_in_context(call.span),
                start_time=_ns(event.timestamp),
                attributes={
                    "gen_ai.system": "gemini",
                    "gen_ai.operation.name": "generate_content",
                    "gen_ai.request.model": event.model,
                    "gemini_guard.attempt": event.attempt,
                    "gemini_guard.attempt_on_model": event.attempt_on_model,
                    "gemini_guard.probe": event.probe,
                    "gemini_guard.shrunk": event.shrunk,
                },
            )
            return
        if call is None:
            return
        if isinstance(event, AttemptFailed):
            span = call.attempt
            if span is not None:
                span.set_attribute("error.type", _error_type(event.http_status, event.category))
                span.set_attribute("gemini_guard.category", event.category)
                if event.http_status is not None:
                    span.set_attribute("http.response.status_code", event.http_status)
                span.set_status(self._error_status(event.message))
        elif isinstance(event, RetryScheduled):
            if call.attempt is not None:
                call.attempt.set_attribute("gemini_guard.retry.delay", event.delay)
                call.attempt.set_attribute("gemini_guard.retry.reason", event.reason)
            self._end_attempt(call, event.timestamp)
        elif isinstance(event, FallbackTaken):
            if call.attempt is not None:
                call.attempt.set_attribute("gemini_guard.fallback.reason", event.reason)
                call.attempt.set_attribute("gemini_guard.fallback.to_model", event.to_model or "")
            call.span.add_event(
                "fallback",
                {
                    "from_model": event.model,
                    "to_model": event.to_model or "",
                    "reason": event.reason,
                },
                timestamp=_ns(event.timestamp),
            )
            self._end_attempt(call, event.timestamp)
        elif isinstance(event, CallSucceeded):
            if call.attempt is not None:
                call.attempt.set_attribute("gen_ai.response.model", event.model)
            self._end_attempt(call, event.timestamp)
            call.span.set_attribute("gen_ai.response.model", event.model)
            call.span.set_attribute("gemini_guard.attempts", event.attempts)
            if event.input_tokens is not None:
                call.span.set_attribute("gen_ai.usage.input_tokens", event.input_tokens)
            call.ended_at = event.timestamp  # ended by the CallUsage that follows
        elif isinstance(event, CallUsage):
            span = call.span
            span.set_attribute("gen_ai.usage.input_tokens", event.input_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", event.output_tokens)
            span.set_attribute("gemini_guard.usage.thinking_tokens", event.thinking_tokens)
            span.set_attribute("gemini_guard.usage.cached_tokens", event.cached_tokens)
            if event.cost_usd is not None:
                span.set_attribute("gemini_guard.cost_usd", event.cost_usd)
            self._end_call(event.call_id, call.ended_at or event.timestamp)
        elif isinstance(event, CallFailedEvent):
            self._end_attempt(call, event.timestamp)
            span = call.span
            span.set_attribute("error.type", event.error)
            span.set_attribute("gemini_guard.category", event.category)
            span.set_attribute("gemini_guard.attempts", event.attempts)
            if event.http_status is not None:
                span.set_attribute("http.response.status_code", event.http_status)
            span.set_status(self._error_status(f"{event.error}: {event.reason}"))
            self._end_call(event.call_id, event.timestamp)

    def _start_call(self, event: AttemptStarted) -> _Call:
        while len(self._calls) >= self._max_open:
            call_id, oldest = next(iter(self._calls.items()))
            self._end_call(call_id, oldest.ended_at)
        span = self.tracer.start_span(
            f"gen_ai.generate_content {event.model}",
            start_time=_ns(event.timestamp),
            attributes={
                "gen_ai.system": "gemini",
                "gen_ai.operation.name": "generate_content",
                "gen_ai.request.model": event.model,
                "gemini_guard.call_id": event.call_id,
            },
        )
        call = _Call(span=span, requested=event.model)
        self._calls[event.call_id] = call
        return call

    def _end_attempt(self, call: _Call, wall: float) -> None:
        if call.attempt is not None:
            call.attempt.end(end_time=_ns(wall))
            call.attempt = None

    def _end_call(self, call_id: str, wall: float | None) -> None:
        call = self._calls.pop(call_id, None)
        if call is None:
            return
        self._end_attempt(call, wall or 0.0)
        call.span.end(end_time=_ns(wall) if wall is not None else None)

    def _error_status(self, description: str) -> Any:
        from opentelemetry.trace import Status, StatusCode

        return Status(StatusCode.ERROR, description[:300])

    def close(self) -> None:
        """End every span still open (calls whose usage never came)."""
        with self._lock:
            while self._calls:
                call_id, call = next(iter(self._calls.items()))
                self._end_call(call_id, call.ended_at)


def _error_type(http_status: int | None, category: str) -> str:
    # The conventions ask for a low-cardinality type: the HTTP status when there is
    # one, else our category.
    return str(http_status) if http_status is not None else category
