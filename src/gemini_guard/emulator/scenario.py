"""Scenarios: what the emulated Gemini API does, as data.

A scenario is a TOML file (or the same structure as a dict) validated by pydantic:
keys and the projects and tiers they belong to, rate limits and when they change,
faults with their probability, model filter and time window, latency, and how
batches progress. Built-ins ship as `data/scenarios/<name>.toml`; `load_scenario`
accepts a built-in name, a path, or a `Scenario`.

A malformed file raises `ScenarioError` naming the file, the line and the field.
Times are emulated seconds since the emulator started (its clock's `monotonic()`).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gemini_guard.errors import ScenarioError

__all__ = [
    "STREAM_ONLY_KINDS",
    "BatchSpec",
    "Fault",
    "FaultKind",
    "FaultMethod",
    "KeySpec",
    "KeyState",
    "LatencyRule",
    "LimitChange",
    "LimitsSpec",
    "ModelEntry",
    "Scenario",
    "VertexLocation",
    "VertexSpec",
    "builtin_scenarios",
    "load_scenario",
    "parse_scenario",
]

TierName = Literal["free", "tier1", "tier2", "tier3"]
KeyState = Literal["ok", "invalid", "region_blocked", "leaked", "credit_depleted", "echo"]
# "echo": a test fault, not a real API behaviour: every request with the key fails
# with a 400 that repeats the key in every text field (message, details, metadata), as
# a misbehaving gateway or proxy might; it proves no layer above writes it anywhere.
FaultKind = Literal[
    "overloaded",  # 503 UNAVAILABLE "The model is overloaded."
    "internal",  # 500 INTERNAL
    "deadline",  # 504 DEADLINE_EXCEEDED after `delay` seconds
    "bad_gateway",  # 502 with Google's HTML error page
    "drop",  # the connection is closed without any response
    "drop_mid_body",  # a 200 starts, half its body is sent, then the connection is cut
    "stream_error",  # a stream sends `after_chunks` chunks, then an error event
    "stream_drop",  # a stream sends `after_chunks` chunks, then the connection is cut
    "phantom_429",  # 429 RESOURCE_EXHAUSTED without details, whatever the usage
    "capacity_429",  # Vertex's shared-capacity 429 "Resource exhausted. Please try again later."
    # Quiet failures: a 200 without usable output (see emulator/quiet.py).
    "blocked_prompt",  # promptFeedback.blockReason SAFETY, no candidates
    "safety_block",  # a candidate stopped with finishReason SAFETY, no text
    "empty_candidate",  # a candidate with no parts, finishReason STOP
    "thinking_exhausted",  # MAX_TOKENS, no visible text, the budget in thoughtsTokenCount
    "malformed_function_call",  # finishReason MALFORMED_FUNCTION_CALL, no content
    "cancelled",  # 499 CANCELLED, reason backendError (the backend gave up under load)
    # Stalls: a stream that goes silent for `delay` emulated seconds.
    "stall_before_first_chunk",  # headers sent, then nothing for `delay`, then the answer
    "stall_mid_stream",  # `after_chunks` chunks, then nothing for `delay`, then the rest
]
# Faults that only make sense on a stream.
STREAM_ONLY_KINDS = frozenset(
    {"stream_error", "stream_drop", "stall_before_first_chunk", "stall_mid_stream"}
)
# The API methods a fault can strike.
FaultMethod = Literal["generateContent", "streamGenerateContent", "countTokens", "embedContent"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeySpec(_Strict):
    """One API key: the project whose quota it draws on, its tier, and its condition."""

    project: str = Field(min_length=1)
    tier: TierName = "free"
    state: KeyState = "ok"


class LimitsSpec(_Strict):
    """Rate limits of one model on one tier. A missing field keeps the shipped figure."""

    rpm: int | None = Field(default=None, ge=0)
    tpm: int | None = Field(default=None, ge=0)
    rpd: int | None = Field(default=None, ge=0)
    unlimited: bool = False  # true: this model/tier has no limits at all


class LimitChange(_Strict):
    """From `at` seconds on, the given limits replace the current ones (e.g. a cut)."""

    at: float = Field(ge=0)
    model: str = "*"
    tier: TierName | Literal["*"] = "*"
    rpm: int | None = Field(default=None, ge=0)
    tpm: int | None = Field(default=None, ge=0)
    rpd: int | None = Field(default=None, ge=0)


class Fault(_Strict):
    """A failure injected with `probability` into matching requests in [start, end)."""

    kind: FaultKind
    probability: float = Field(default=1.0, ge=0.0, le=1.0)
    models: tuple[str, ...] = ()  # empty: every model
    start: float = Field(default=0.0, ge=0)
    end: float | None = Field(default=None, gt=0)
    delay: float = Field(default=60.0, ge=0)  # "deadline": seconds before the 504; stalls
    after_chunks: int = Field(default=1, ge=0)  # stream faults: chunks sent before failing
    # Generation by default; countTokens and embedContent (batches too) only when named,
    # so that existing scenarios
    # keep failing exactly the requests they failed before.
    methods: tuple[FaultMethod, ...] = Field(
        default=("generateContent", "streamGenerateContent"), min_length=1
    )

    @model_validator(mode="after")
    def _window(self) -> Fault:
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        return self

    def applies(self, model: str, elapsed: float, *, streaming: bool) -> bool:
        if self.kind in STREAM_ONLY_KINDS and not streaming:
            return False
        if self.models and model not in self.models:
            return False
        return self.start <= elapsed and (self.end is None or elapsed < self.end)


class LatencyRule(_Strict):
    """How long a request takes before its response starts, in emulated seconds.

    fixed: `seconds`; uniform: between `low` and `high`; lognormal: median `seconds`
    and shape `sigma`; exponential: mean `seconds`. The first rule whose `models`
    match (empty: all) is used.
    """

    distribution: Literal["fixed", "uniform", "lognormal", "exponential"] = "fixed"
    seconds: float = Field(default=0.0, ge=0)
    low: float = Field(default=0.0, ge=0)
    high: float = Field(default=0.0, ge=0)
    sigma: float = Field(default=0.5, ge=0)
    models: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _range(self) -> LatencyRule:
        if self.distribution == "uniform" and self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        return self


class BatchSpec(_Strict):
    """A batch stays PENDING `pending_seconds`, then runs `seconds_per_request` each."""

    pending_seconds: float = Field(default=30.0, ge=0)
    seconds_per_request: float = Field(default=2.0, ge=0)


class ModelEntry(_Strict):
    """A model the shipped table does not know (e.g. a preview), served by the emulator."""

    input_token_limit: int = Field(default=1_048_576, gt=0)
    output_token_limit: int = Field(default=65_536, gt=0)


class VertexLocation(_Strict):
    """The dynamic shared quota of one Vertex AI location, as a capacity.

    Vertex AI publishes no per-project RPM for pay-as-you-go traffic: every project
    draws on Google's shared capacity for a model in a location, and gets a bare 429
    when it runs short. Here that capacity is `rpm` requests per minute for each model
    (all projects together), over [start, end); outside the window the location is
    unlimited. `models` limits it to some models (empty: all).
    """

    rpm: int = Field(ge=0)
    models: tuple[str, ...] = ()
    start: float = Field(default=0.0, ge=0)
    end: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _window(self) -> VertexLocation:
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        return self

    def capacity(self, model: str, elapsed: float) -> int | None:
        """Requests per minute `model` may have here at `elapsed`; None: unlimited."""
        if self.models and model not in self.models:
            return None
        if elapsed < self.start or (self.end is not None and elapsed >= self.end):
            return None
        return self.rpm


class VertexSpec(_Strict):
    """The Vertex AI surface: locations with a shared capacity (unlisted: unlimited).

    `project_rpm` is a per-project quota of requests per minute per base model in each
    location (Vertex's `generate_content_requests_per_minute_per_project_per_base_model`,
    as with provisioned or raised quotas); None: no such quota.
    """

    locations: dict[str, VertexLocation] = Field(default_factory=dict)
    project_rpm: int | None = Field(default=None, ge=0)


class Scenario(_Strict):
    """Everything the emulator needs to know to behave like a given day of Gemini."""

    name: str = "custom"
    description: str = ""
    description_zh: str = ""  # the description in Chinese; "" falls back to `description`
    seed: int = 0
    quotas: bool = True  # false: no rate limits anywhere (throughput tests)
    default_tier: TierName = "free"
    accept_unknown_keys: bool = True  # unknown key: its own project on default_tier
    faults_consume_quota: bool = True  # an admitted request that then fails still counts
    stream_chunk_tokens: int = Field(default=8, gt=0)
    cache_min_tokens: int | None = Field(default=None, ge=0)  # None: per-model default
    keys: dict[str, KeySpec] = Field(default_factory=dict)
    models: dict[str, ModelEntry] = Field(default_factory=dict)
    limits: dict[str, dict[TierName, LimitsSpec]] = Field(default_factory=dict)
    limit_changes: tuple[LimitChange, ...] = ()
    faults: tuple[Fault, ...] = ()
    latency: tuple[LatencyRule, ...] = ()
    batch: BatchSpec = BatchSpec()
    vertex: VertexSpec = VertexSpec()

    def describe(self, lang: str = "en") -> str:
        """The one-line description in `lang` (en or zh); English when no Chinese is given."""
        if lang == "zh" and self.description_zh:
            return self.description_zh
        return self.description

    @model_validator(mode="after")
    def _changes_in_order(self) -> Scenario:
        ats = [c.at for c in self.limit_changes]
        if ats != sorted(ats):
            raise ValueError("limit_changes must be listed in time order (by `at`)")
        return self


_SCENARIO_DIR = "data/scenarios"


def builtin_scenarios(*, lang: str = "en") -> dict[str, str]:
    """Name -> one-line description of every built-in scenario, in `lang` (en or zh)."""
    out: dict[str, str] = {}
    root = resources.files("gemini_guard").joinpath(_SCENARIO_DIR)
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            name = entry.name.removesuffix(".toml")
            scenario = _load_text(entry.read_text("utf-8"), source=f"built-in {name}")
            out[name] = scenario.describe(lang)
    return out


def load_scenario(scenario: str | Path | Scenario | Mapping[str, Any]) -> Scenario:
    """A `Scenario` from a built-in name, a TOML file path, a dict, or a `Scenario`."""
    if isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, Mapping):
        return _validate(dict(scenario), text=None, source="scenario dict")
    if isinstance(scenario, str) and "/" not in scenario and not scenario.endswith(".toml"):
        entry = resources.files("gemini_guard").joinpath(f"{_SCENARIO_DIR}/{scenario}.toml")
        if not entry.is_file():
            known = ", ".join(builtin_scenarios())
            raise ScenarioError(
                f"unknown built-in scenario {scenario!r}; built-ins are: {known} "
                "(or pass the path of a .toml file)"
            )
        return _load_text(entry.read_text("utf-8"), source=f"built-in {scenario}")
    path = Path(scenario)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario file {path}: {exc.strerror or exc}") from exc
    return parse_scenario(text, source=str(path), default_name=path.stem)


def parse_scenario(
    text: str, *, source: str = "<scenario>", default_name: str = "custom"
) -> Scenario:
    """Parse TOML scenario text; errors name `source`, the line and the field."""
    return _load_text(text, source=source, default_name=default_name)


def _load_text(text: str, *, source: str, default_name: str | None = None) -> Scenario:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already ends with "(at line L, column C)".
        raise ScenarioError(f"{source}: invalid TOML: {exc}") from exc
    if default_name is not None:
        raw.setdefault("name", default_name)
    return _validate(raw, text=text, source=source)


def _validate(raw: dict[str, Any], *, text: str | None, source: str) -> Scenario:
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        problems = []
        lines = _KeyLines(text) if text is not None else None
        for err in exc.errors():
            loc = tuple(err["loc"])
            field = _dotted(loc)
            where = ""
            if lines is not None:
                line = lines.find(loc)
                if line is not None:
                    where = f"line {line}: "
            value = ""
            if err["type"] not in ("missing", "extra_forbidden") and "input" in err:
                value = f" (got {err['input']!r})"
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = f"unknown field; allowed here: {_allowed(loc)}"
            problems.append(f"{where}{field}: {msg}{value}")
        raise ScenarioError(f"{source}: " + "; ".join(problems)) from None


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _allowed(loc: tuple[Any, ...]) -> str:
    """The field names allowed in the table that holds the unknown field `loc`."""
    parts = [str(p) for p in loc[:-1] if not isinstance(p, int)]
    # Tables keyed by user-chosen names: how many name levels follow the field.
    by_name: dict[str, tuple[int, type[BaseModel]]] = {
        "keys": (1, KeySpec),
        "models": (1, ModelEntry),
        "limits": (2, LimitsSpec),
    }
    nested: dict[str, type[BaseModel]] = {
        "limit_changes": LimitChange,
        "faults": Fault,
        "latency": LatencyRule,
        "batch": BatchSpec,
        "vertex": VertexSpec,
    }
    model: type[BaseModel] = Scenario
    if parts:
        head = parts[0]
        if head in by_name:
            depth, value_model = by_name[head]
            if len(parts) < 1 + depth:
                return "(names of your choice, each a table)"
            model = value_model
        elif head == "vertex" and len(parts) >= 3 and parts[1] == "locations":
            model = VertexLocation
        elif head in nested:
            model = nested[head]
    return ", ".join(model.model_fields)


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+))*)\s*="""
)
_INLINE_KEY = re.compile(r"""(?:[{,]\s*)("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""")
_PART = re.compile(r""""[^"]*"|'[^']*'|[A-Za-z0-9_-]+""")


def _split_key(dotted: str) -> tuple[str, ...]:
    return tuple(p.strip("\"'") for p in _PART.findall(dotted))


class _KeyLines:
    """Maps a validation error location to the line of the TOML text that set it.

    Good enough for the files people write: table headers, arrays of tables,
    dotted keys and one-line inline tables.
    """

    def __init__(self, text: str) -> None:
        self._lines: dict[tuple[Any, ...], int] = {}
        table: tuple[Any, ...] = ()
        counts: dict[tuple[str, ...], int] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            header = _HEADER.match(line)
            if header and not _KEY.match(line):
                path = _split_key(header.group(2))
                if header.group(1) == "[[":
                    index = counts.get(path, -1) + 1
                    counts[path] = index
                    table = (*path, index)
                else:
                    table = path
                self._lines.setdefault(table, number)
                continue
            key = _KEY.match(line)
            if key:
                path = (*table, *_split_key(key.group(1)))
                self._lines.setdefault(path, number)
                rest = line[key.end() :]
                for inner in _INLINE_KEY.finditer(rest):
                    self._lines.setdefault((*path, inner.group(1).strip("\"'")), number)

    def find(self, loc: tuple[Any, ...]) -> int | None:
        for cut in range(len(loc), 0, -1):
            line = self._lines.get(loc[:cut])
            if line is not None:
                return line
        return None
