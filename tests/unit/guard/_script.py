"""A scripted transport: real SDK exceptions and responses, in the order a test wants."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from google.genai import errors, types

from gemini_guard.call import AttemptPlan, CallInfo, Engine, Permit, run_async, run_sync
from gemini_guard.clock import FakeClock
from gemini_guard.diagnosis import Diagnosis
from gemini_guard.policies import BreakerPolicy, MemoryBreakerStore, RetryBudget, RetryPolicy
from gemini_guard.telemetry import Event, Telemetry


def overloaded() -> errors.APIError:
    return errors.ServerError(
        503,
        {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}},
    )


def internal() -> errors.APIError:
    return errors.ServerError(
        500, {"error": {"code": 500, "message": "An internal error.", "status": "INTERNAL"}}
    )


def deadline() -> errors.APIError:
    return errors.ServerError(
        504,
        {"error": {"code": 504, "message": "Deadline expired.", "status": "DEADLINE_EXCEEDED"}},
    )


def bare_429(message: str = "Resource has been exhausted (e.g. check quota).") -> errors.APIError:
    """A 429 with no QuotaFailure and no RetryInfo (the paid-tier "phantom" 429)."""
    return errors.ClientError(
        429, {"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED"}}
    )


def bad_request() -> errors.APIError:
    return errors.ClientError(
        400,
        {
            "error": {
                "code": 400,
                "message": "* GenerateContentRequest.generation_config.candidate_count: "
                "must be between 1 and 8\n",
                "status": "INVALID_ARGUMENT",
            }
        },
    )


def not_found(model: str) -> errors.APIError:
    return errors.ClientError(
        404,
        {
            "error": {
                "code": 404,
                "message": f"models/{model} is not found for API version v1, or is not "
                "supported for generateContent.",
                "status": "NOT_FOUND",
            }
        },
    )


def quota(*, per: str = "Minute", delay: str = "37s", model: str = "gemini-2.5-flash") -> Any:
    return errors.ClientError(
        429,
        {
            "error": {
                "code": 429,
                "message": "You exceeded your current quota, please check your plan and "
                "billing details.",
                "status": "RESOURCE_EXHAUSTED",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                        "violations": [
                            {
                                "quotaMetric": "generativelanguage.googleapis.com/"
                                "generate_content_free_tier_requests",
                                "quotaId": f"GenerateRequestsPer{per}PerProjectPerModel-FreeTier",
                                "quotaDimensions": {"location": "global", "model": model},
                                "quotaValue": "10",
                            }
                        ],
                    },
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay},
                ],
            }
        },
    )


def ok(model: str, *, prompt_tokens: int = 7) -> types.GenerateContentResponse:
    return types.GenerateContentResponse(
        model_version=model,
        candidates=[
            types.Candidate(content=types.Content(role="model", parts=[types.Part(text="hi")]))
        ],
        usage_metadata=types.GenerateContentResponseUsageMetadata(prompt_token_count=prompt_tokens),
    )


@dataclass
class Script:
    """Per model, what each successive attempt returns (a response) or raises."""

    outcomes: dict[str, list[object]]
    plans: list[AttemptPlan] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)
    clock: FakeClock | None = None

    def __post_init__(self) -> None:
        self._queues = defaultdict(list, {m: list(o) for m, o in self.outcomes.items()})

    def send(self, plan: AttemptPlan) -> types.GenerateContentResponse:
        self.plans.append(plan)
        if self.clock is not None:
            self.sent_at.append(self.clock.monotonic())
        queue = self._queues[plan.model]
        outcome = queue.pop(0) if queue else ok(plan.model)
        if isinstance(outcome, BaseException):
            raise outcome
        assert isinstance(outcome, types.GenerateContentResponse)
        return outcome

    async def asend(self, plan: AttemptPlan) -> types.GenerateContentResponse:
        return self.send(plan)

    @property
    def models(self) -> list[str]:
        return [p.model for p in self.plans]


@dataclass
class RecordingGate:
    """A quota gate that grants every request after `wait` seconds and records settles."""

    wait: float = 0.0
    reserved: list[str] = field(default_factory=list)
    settled: list[tuple[str, bool, int | None, Diagnosis | None]] = field(default_factory=list)
    raise_on: dict[str, Exception] = field(default_factory=dict)

    def reserve(self, *, project: str, model: str, tokens: int) -> Permit:
        if model in self.raise_on:
            raise self.raise_on[model]
        self.reserved.append(model)
        return Permit(project=project, model=model, tokens=tokens, wait=self.wait)

    async def areserve(self, *, project: str, model: str, tokens: int) -> Permit:
        return self.reserve(project=project, model=model, tokens=tokens)

    def confirm(self, permit: Permit) -> float:
        return 0.0

    async def aconfirm(self, permit: Permit) -> float:
        return self.confirm(permit)

    def settle(
        self,
        permit: Permit,
        *,
        sent: bool,
        input_tokens: int | None = None,
        diagnosis: Diagnosis | None = None,
    ) -> None:
        self.settled.append((permit.model, sent, input_tokens, diagnosis))

    async def asettle(
        self,
        permit: Permit,
        *,
        sent: bool,
        input_tokens: int | None = None,
        diagnosis: Diagnosis | None = None,
    ) -> None:
        self.settle(permit, sent=sent, input_tokens=input_tokens, diagnosis=diagnosis)


@dataclass
class ConfirmingGate(RecordingGate):
    """A gate that, like QuotaLimiter, re-checks each permit just before sending:
    `answers` are the extra waits its successive confirms return (then 0.0)."""

    answers: list[float] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)

    def confirm(self, permit: Permit) -> float:
        self.confirmed.append(permit.model)
        return self.answers.pop(0) if self.answers else 0.0

    async def aconfirm(self, permit: Permit) -> float:
        return self.confirm(permit)


@dataclass
class Rig:
    clock: FakeClock
    engine: Engine
    events: list[Event]
    gate: RecordingGate

    def run(
        self, script: Script, chain: Iterable[str]
    ) -> tuple[types.GenerateContentResponse, CallInfo]:
        script.clock = self.clock
        steps = self.engine.steps(tuple(chain), tokens=5, input_tokens_of=_tokens)
        return run_sync(steps, clock=self.clock, quota=self.gate, send=script.send)

    async def arun(
        self, script: Script, chain: Iterable[str]
    ) -> tuple[types.GenerateContentResponse, CallInfo]:
        script.clock = self.clock
        steps = self.engine.steps(tuple(chain), tokens=5, input_tokens_of=_tokens)
        return await run_async(steps, clock=self.clock, quota=self.gate, send=script.asend)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


def _tokens(response: types.GenerateContentResponse) -> int | None:
    usage = response.usage_metadata
    return usage.prompt_token_count if usage else None


def rig(
    *,
    retry: RetryPolicy | None = None,
    breaker: BreakerPolicy | None = None,
    budget: RetryBudget | None = None,
    gate: RecordingGate | None = None,
    clock: FakeClock | None = None,
    pacing: bool = True,
) -> Rig:
    """`pacing=False`: the engine has no quota gate (the Guard's `quota=False`)."""
    clock = clock or FakeClock()
    events: list[Event] = []
    gate = gate or RecordingGate()
    engine = Engine(
        clock=clock,
        retry=retry or RetryPolicy(jitter="none", server_delay_jitter=0.0),
        breaker=breaker or BreakerPolicy(),
        breaker_store=MemoryBreakerStore(),
        telemetry=Telemetry([events.append]),
        quota=gate if pacing else None,
        budget=budget,
        rng=random.Random(7),
    )
    return Rig(clock, engine, events, gate)
