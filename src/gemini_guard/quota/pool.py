"""A pool of Google Cloud projects: send each request where there is quota for it.

Gemini's limits are per project, not per API key: keys of one project share one
ledger, keys of different projects are separate pools. `ProjectPool` holds several
projects, each with its key(s), tier and optionally its own per-model limits, and is itself a
`QuotaGate`:

    pool = ProjectPool([Project("team-a", keys=("AIza...",), tier="free"),
                        Project("team-b", keys=("AIza...",), tier="tier1")],
                       store="sqlite:///state.db")
    permit = pool.reserve(project="*", model="gemini-2.5-flash", tokens=120)
    key = pool.api_key(permit.project)   # send with a key of the chosen project

`reserve(project="*")` (or `ANY_PROJECT`) lets the projects take turns: a project's
turn books only if it can send now, so the load spreads over those with room and a
choice costs one booking however large the pool. When none can send now, it reads
every project's headroom and books on the best — the shortest wait, then the most
room left in the minute, then in the day, then the order given. It moves on when one
is spent: a project whose
day's quota is exhausted (by the ledger, or by a per-day 429 the limiter was told
about) is skipped until its Pacific midnight. A named project is used as named.
`choose_project(model, tokens)` tells the project with the most headroom now,
without booking anything.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gemini_guard.call.ports import Permit
from gemini_guard.clock import Clock
from gemini_guard.errors import ConfigError, DailyQuotaExhausted, QuotaWait
from gemini_guard.pacific import next_reset
from gemini_guard.quota import _diagnoses
from gemini_guard.quota.adaptive import AdaptivePolicy
from gemini_guard.quota.limiter import QuotaLimiter
from gemini_guard.quota.limits import normalize_model, parse_model_limits, parse_tier
from gemini_guard.quota.stores.base import QuotaStore
from gemini_guard.secrets import register_secrets
from gemini_guard.tiers import Limits

if TYPE_CHECKING:
    from gemini_guard.diagnosis import Diagnosis

__all__ = ["ANY_PROJECT", "Headroom", "Project", "ProjectPool"]

ANY_PROJECT = "*"


def _redact(key: str) -> str:
    return f"...{key[-4:]}" if len(key) > 8 else "***"


@dataclass(frozen=True, slots=True)
class Project:
    """One Google Cloud project: its name, its API key(s), its tier and its own limits.

    The keys are secrets: they never appear in `repr`, messages or events.
    """

    name: str
    keys: tuple[str, ...] = field(repr=False)
    tier: str = "auto"
    # Per-model limits for this project alone, over the tier and the pool's `limits`:
    # {"gemini-2.5-pro": {"rpm": 60}} (provisioned throughput is bought per project).
    limits: Mapping[str, Limits | Mapping[str, object]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "{" in self.name:
            raise ConfigError(
                f"projects: name={self.name!r} must be a non-empty project id without braces"
            )
        if isinstance(self.keys, str):
            raise ConfigError(
                f"projects.{self.name}.keys must be a list of API keys, not one string"
            )
        keys = tuple(self.keys)
        if not keys or not all(isinstance(key, str) and key.strip() for key in keys):
            raise ConfigError(
                f"projects.{self.name}.keys needs at least one API key (non-empty strings)"
            )
        object.__setattr__(self, "keys", keys)
        register_secrets(keys)
        parse_tier(self.tier, field_name=f"projects.{self.name}.tier")
        object.__setattr__(
            self,
            "limits",
            parse_model_limits(self.limits, field_name=f"projects.{self.name}.limits"),
        )

    @property
    def redacted_keys(self) -> tuple[str, ...]:
        return tuple(_redact(key) for key in self.keys)


@dataclass(frozen=True, slots=True)
class Headroom:
    """How much quota a project has left for one model right now."""

    project: str
    wait: float  # seconds until a request could start (an estimate; reserve is exact)
    minute_room: float  # requests left in the current window (inf: no limit known)
    day_room: float  # requests left today (inf: no limit known)
    exhausted_until: float | None  # wall time the day's quota returns, if spent

    @property
    def exhausted(self) -> bool:
        return self.exhausted_until is not None

    def rank(self) -> tuple[float, float, float]:
        return (self.wait, -self.minute_room, -self.day_room)


class ProjectPool:
    """Several projects behind one `QuotaGate`; see the module docstring.

    `projects`: `Project`s or mappings `{"name": ..., "keys": [...], "tier": ...}`.
    Every other option is the `QuotaLimiter`'s (the pool builds one limiter, with
    each project's tier, over one store).
    """

    def __init__(
        self,
        projects: Iterable[Project | Mapping[str, object]],
        *,
        store: QuotaStore | str = "memory://",
        clock: Clock | None = None,
        tier: str = "auto",
        limits: dict[str, Limits | dict[str, object]] | None = None,
        max_wait: float | dt.timedelta | None = None,
        latency_allowance: float | dt.timedelta | None = None,
        adaptive: bool | AdaptivePolicy = True,
        on_event: Callable[[object], None] | None = None,
    ) -> None:
        self._projects = tuple(_project(entry) for entry in projects)
        if not self._projects:
            raise ConfigError("projects: give at least one project (name, keys, tier)")
        names = [project.name for project in self._projects]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigError(f"projects: {', '.join(duplicates)} listed more than once")
        owners: dict[str, str] = {}
        for project in self._projects:
            for key in project.keys:
                other = owners.setdefault(key, project.name)
                if other != project.name:
                    raise ConfigError(
                        f"projects {other} and {project.name} list the same API key "
                        f"({_redact(key)}); a key belongs to exactly one project"
                    )
        self._limiter = QuotaLimiter(
            store=store,
            clock=clock,
            tier=tier,
            project_tiers={
                project.name: project.tier for project in self._projects if project.tier != "auto"
            },
            limits=limits,
            project_limits={project.name: project.limits for project in self._projects},
            max_wait=max_wait,
            latency_allowance=latency_allowance,
            adaptive=adaptive,
            on_event=on_event,
        )
        self._by_name = {project.name: project for project in self._projects}
        self._key_turns: dict[str, Iterator[str]] = {
            project.name: itertools.cycle(project.keys) for project in self._projects
        }
        # (project, model) -> wall time its day's quota returns: skipped until then.
        self._spent: dict[tuple[str, str], float] = {}
        self._next_turn = 0  # the project `reserve("*")` asks first

    @property
    def limiter(self) -> QuotaLimiter:
        return self._limiter

    @property
    def projects(self) -> tuple[Project, ...]:
        return self._projects

    def __repr__(self) -> str:
        names = [project.name for project in self._projects]
        return f"ProjectPool({names!r}, store={self._limiter.store.url!r})"

    def close(self) -> None:
        self._limiter.close()

    async def aclose(self) -> None:
        await self._limiter.aclose()

    def api_key(self, project: str) -> str:
        """A key of `project`, taking turns among its keys (they share one quota)."""
        try:
            return next(self._key_turns[project])
        except KeyError:
            raise ConfigError(
                f"project {project!r} is not in the pool; known: {', '.join(self._by_name)}"
            ) from None

    # -- choosing -------------------------------------------------------------------

    def headroom(self, project: str, model: str, *, tokens: int = 0) -> Headroom:
        """What `project` has left for `model` now (read from the store)."""
        limiter = self._limiter
        now = limiter.clock.time()
        model = normalize_model(model)
        spent_until = self._spent.get((project, model))
        if spent_until is not None:
            if now < spent_until:
                return Headroom(project, float("inf"), 0.0, 0.0, spent_until)
            del self._spent[(project, model)]
        budget = limiter.budget(project, model)
        usage = limiter.usage(project, model)
        day_room = float("inf")
        if budget.day_requests is not None:
            day_room = float(budget.day_requests - usage.day_requests)
        if budget.day_tokens is not None and usage.day_tokens + tokens > budget.day_tokens:
            day_room = 0.0
        if usage.day_spent or day_room <= 0:
            return Headroom(project, float("inf"), 0.0, 0.0, next_reset(now))
        wait = 0.0
        minute_room = float("inf")
        if budget.requests is not None:
            minute_room = float(budget.requests - usage.requests)
        full = minute_room <= 0 or (
            budget.tokens is not None and usage.tokens + tokens > budget.tokens
        )
        if full and usage.next_free is not None:
            wait = max(0.0, usage.next_free - now)
        return Headroom(project, wait, max(minute_room, 0.0), day_room, None)

    def _candidates(self, model: str, tokens: int, exclude: Collection[str] = ()) -> list[Headroom]:
        rooms = [
            self.headroom(p.name, model, tokens=tokens)
            for p in self._projects
            if p.name not in exclude
        ]
        if not rooms:
            raise ConfigError(
                f"exclude={sorted(exclude)!r} leaves no project of the pool to book "
                f"{model} on; the pool has {', '.join(self._by_name)}"
            )
        order = {p.name: index for index, p in enumerate(self._projects)}
        open_ = [room for room in rooms if not room.exhausted]
        return sorted(open_, key=lambda room: (*room.rank(), order[room.project])) + [
            room for room in rooms if room.exhausted
        ]

    def choose_project(self, model: str, tokens: int = 0) -> str:
        """The project with the most headroom for `model` now (nothing is booked)."""
        return self._candidates(model, tokens)[0].project

    # -- the QuotaGate --------------------------------------------------------------

    def reserve(
        self,
        *,
        project: str | None,
        model: str,
        tokens: int,
        exclude: Collection[str] = (),
        requests: int = 1,
    ) -> Permit:
        """Book on `project`, or on the best project when it is "*" (or None), leaving
        out the projects in `exclude` (the Guard's: their breaker for `model` is open)."""
        if project is not None and project != ANY_PROJECT:
            return self._limiter.reserve(
                project=project, model=model, tokens=tokens, requests=requests
            )
        for name in self._turns(model, exclude) if requests == 1 else ():
            try:
                return self._limiter.reserve(
                    project=name, model=model, tokens=tokens, now_only=True
                )
            except QuotaWait:
                continue
            except DailyQuotaExhausted as error:
                self._note(name, model, error)
        errors: list[DailyQuotaExhausted | QuotaWait] = []
        rooms = self._candidates(model, tokens, exclude)
        for room in rooms:
            if room.exhausted:
                continue
            try:
                return self._limiter.reserve(
                    project=room.project, model=model, tokens=tokens, requests=requests
                )
            except (DailyQuotaExhausted, QuotaWait) as error:
                self._note(room.project, model, error)
                errors.append(error)
        raise self._all_spent(model, rooms, errors)

    async def areserve(
        self,
        *,
        project: str | None,
        model: str,
        tokens: int,
        exclude: Collection[str] = (),
        requests: int = 1,
    ) -> Permit:
        """`reserve` for asyncio callers."""
        if project is not None and project != ANY_PROJECT:
            return await self._limiter.areserve(
                project=project, model=model, tokens=tokens, requests=requests
            )
        for name in self._turns(model, exclude) if requests == 1 else ():
            try:
                return await self._limiter.areserve(
                    project=name, model=model, tokens=tokens, now_only=True
                )
            except QuotaWait:
                continue
            except DailyQuotaExhausted as error:
                self._note(name, model, error)
        errors: list[DailyQuotaExhausted | QuotaWait] = []
        rooms = self._candidates(model, tokens, exclude)
        for room in rooms:
            if room.exhausted:
                continue
            try:
                return await self._limiter.areserve(
                    project=room.project, model=model, tokens=tokens, requests=requests
                )
            except (DailyQuotaExhausted, QuotaWait) as error:
                self._note(room.project, model, error)
                errors.append(error)
        raise self._all_spent(model, rooms, errors)

    def _turns(self, model: str, exclude: Collection[str]) -> Iterator[str]:
        """The projects in turn, from the one after the last booked, skipping the
        excluded and those whose day is spent. Taking turns costs the same for 200
        projects as for one: each try is one booking that waits for nothing."""
        projects = self._projects
        count = len(projects)
        first = self._next_turn
        now = self._limiter.clock.time()
        model = normalize_model(model)
        for step in range(count):
            index = (first + step) % count
            name = projects[index].name
            if name in exclude:
                continue
            spent_until = self._spent.get((name, model))
            if spent_until is not None and now < spent_until:
                continue
            # The turn moves on whether or not this project books: a full one is
            # asked again only after the others.
            self._next_turn = (index + 1) % count
            yield name

    def _note(self, project: str, model: str, error: DailyQuotaExhausted | QuotaWait) -> None:
        if isinstance(error, DailyQuotaExhausted):
            self._spent[(project, normalize_model(model))] = error.reset_at

    def _all_spent(
        self, model: str, rooms: list[Headroom], errors: list[DailyQuotaExhausted | QuotaWait]
    ) -> DailyQuotaExhausted | QuotaWait:
        waits = [error for error in errors if isinstance(error, QuotaWait)]
        if waits:
            # Some project only needed a longer wait than allowed: report the shortest.
            return min(waits, key=lambda error: error.wait)
        model = normalize_model(model)
        resets = [error.reset_at for error in errors if isinstance(error, DailyQuotaExhausted)]
        resets += [room.exhausted_until for room in rooms if room.exhausted_until is not None]
        reset_at = min(resets)
        diagnosis = next(
            (error.diagnosis for error in errors if isinstance(error, DailyQuotaExhausted)),
            None,
        )
        if diagnosis is None:
            diagnosis = _diagnoses.day_spent(
                model=model,
                project=", ".join(self._by_name),
                detail="every project of the pool",
                limit=None,
                tier="free",
            )
        return DailyQuotaExhausted(
            f"the per-day quota of {model} is spent in every project of the pool "
            f"({', '.join(self._by_name)}); the first returns at midnight Pacific time",
            diagnosis=diagnosis,
            reset_at=reset_at,
        )

    def confirm(self, permit: Permit) -> float:
        return self._limiter.confirm(permit)

    async def aconfirm(self, permit: Permit) -> float:
        return await self._limiter.aconfirm(permit)

    def settle(
        self,
        permit: Permit,
        *,
        sent: bool,
        input_tokens: int | None = None,
        diagnosis: Diagnosis | None = None,
    ) -> None:
        self._limiter.settle(permit, sent=sent, input_tokens=input_tokens, diagnosis=diagnosis)

    async def asettle(
        self,
        permit: Permit,
        *,
        sent: bool,
        input_tokens: int | None = None,
        diagnosis: Diagnosis | None = None,
    ) -> None:
        await self._limiter.asettle(
            permit, sent=sent, input_tokens=input_tokens, diagnosis=diagnosis
        )


def _project(entry: Project | Mapping[str, object]) -> Project:
    if isinstance(entry, Project):
        return entry
    if not isinstance(entry, Mapping):
        raise ConfigError(
            "projects: each entry is a Project or a mapping with name, keys, tier; "
            f"got {type(entry).__name__}"
        )
    unknown = sorted(set(entry) - {"name", "keys", "tier", "limits"})
    if unknown:
        raise ConfigError(
            f"projects: unknown field(s) {', '.join(unknown)}; allowed: name, keys, tier, limits"
        )
    keys = entry.get("keys", ())
    return Project(
        name=entry.get("name"),  # type: ignore[arg-type]  # validated by Project
        keys=keys if isinstance(keys, str) else tuple(keys),  # type: ignore[arg-type]
        tier=entry.get("tier", "auto"),  # type: ignore[arg-type]
        limits=entry.get("limits", {}),  # type: ignore[arg-type]  # validated by Project
    )
