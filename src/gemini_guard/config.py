"""One validated configuration for everything a Guard takes.

Read from `gemini-guard.toml` (or a path given with `--config`), then overridden by
environment variables, then validated; a wrong field is a `ConfigError` naming the
field, the value, what is allowed and where it came from, before anything is sent.

    tier = "auto"                                   # auto | free | tier1 | tier2 | tier3
    models = ["gemini-2.5-pro", "gemini-2.5-flash"] # the fallback chain
    store = "memory://"                             # quota ledgers and breaker state
    cache = ""                                      # response cache URL ("" = none)
    base_url = ""                                   # e.g. an emulator or gateway

    [[projects]]                                    # keys by env var name, never the key
    name = "main"
    api_key_env = "GEMINI_API_KEY"
    [projects.limits."gemini-2.5-pro"]              # this project only (e.g. provisioned
    rpm = 60                                        # throughput), over [quota.limits]

    [retry]                                         # a preset plus any overrides
    preset = "interactive"                          # default | interactive | batch
    max_retries = 4

    [breaker]
    failure_threshold = 5
    cooldown = 30

    [quota]                                         # pacing under RPM, TPM, RPD
    enabled = true                                  # false: no pacing
    max_wait = 120                                  # seconds; longer waits: QuotaWait
    token_counter = "estimate"                      # estimate | api (countTokens)
    [quota.limits."gemini-2.5-pro"]                 # override the tier table per model
    rpm = 2

    [prices."gemini-2.5-flash"]                     # USD per 1M tokens, for `plan`
    input = 0.30
    output = 2.50

    [telemetry]
    log = true
    jsonl = "~/.cache/gemini-guard/events.jsonl"
    metrics = false                                 # Prometheus (the prometheus extra)
    alerts = false                                  # alert rules; webhook = "https://…"
    daily_budget_usd = 20                           # refuse calls beyond it (optional)

Environment overrides, `GEMINI_GUARD_<FIELD>` for a top-level field and
`GEMINI_GUARD_<SECTION>__<FIELD>` inside a section (case-insensitive; lists are
comma-separated):
    GEMINI_GUARD_TIER=tier1   GEMINI_GUARD_MODELS=gemini-2.5-flash,gemini-2.5-flash-lite
    GEMINI_GUARD_STORE=...    GEMINI_GUARD_CACHE=...   GEMINI_GUARD_BASE_URL=...
    GEMINI_GUARD_RETRY__PRESET=batch   GEMINI_GUARD_BREAKER__COOLDOWN=60
    GEMINI_GUARD_QUOTA__ENABLED=false  GEMINI_GUARD_QUOTA__MAX_WAIT=30
    GEMINI_GUARD_QUOTA__TOKEN_COUNTER=api
    GEMINI_GUARD_TELEMETRY__JSONL=/var/log/gemini-guard.jsonl
    GEMINI_GUARD_CONFIG=path/to/gemini-guard.toml   (the file itself)

Extending: a later feature adds its own section as one more field of `GuardConfig`
(a `Section` subclass); loading, env overrides and error messages come for free.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from gemini_guard.cache.settings import CacheConfig
from gemini_guard.errors import ConfigError
from gemini_guard.policies import BreakerPolicy, RetryPolicy
from gemini_guard.secrets import register_secret
from gemini_guard.settings import Section

__all__ = [
    "DEFAULT_FILE",
    "ENV_PREFIX",
    "BreakerSection",
    "CacheConfig",
    "GatewaySection",
    "GatewayTokenSection",
    "GuardConfig",
    "PriceSection",
    "ProjectSection",
    "RetrySection",
    "Section",
    "TelemetrySection",
    "load_config",
]

DEFAULT_FILE = "gemini-guard.toml"
ENV_PREFIX = "GEMINI_GUARD_"
# Variables of ours that are not configuration fields: the file itself, the CLI's
# traceback switch and the local model table's path.
_NOT_FIELDS = frozenset({"CONFIG", "DEBUG", "MODEL_TABLE"})
_LIST_FIELDS = {("models",)}

# "auto": pace only by what the server reveals (a 429's quota id and quotaValue).
TierName = Literal["auto", "free", "tier1", "tier2", "tier3"]


LimitName = Literal["rpm", "tpm", "rpd", "tpd"]


def _check_limits(limits: Mapping[str, Mapping[LimitName, int]], where: str) -> None:
    for model, figures in limits.items():
        for name, value in figures.items():
            if value < 1:
                raise ValueError(f"{where}.{model}.{name} must be a positive integer, got {value}")


class ProjectSection(Section):
    """A Google Cloud project: its quota is shared by all of its keys."""

    name: str = Field(default="default", min_length=1)
    api_key_env: str = Field(default="GEMINI_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    tier: TierName | None = None  # None: the top-level tier
    # per model, this project only, over [quota.limits]: {"gemini-2.5-pro": {"rpm": 60}}
    limits: dict[str, dict[LimitName, int]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _no_literal_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and ("api_key" in data or "key" in data):
            raise ValueError(
                "never put an API key in the configuration; name the environment "
                'variable that holds it instead: api_key_env = "GEMINI_API_KEY"'
            )
        return data

    @model_validator(mode="after")
    def _positive(self) -> ProjectSection:
        _check_limits(self.limits, "limits")
        return self

    def api_key(self) -> str | None:
        key = os.environ.get(self.api_key_env) or None
        register_secret(key)  # whatever its shape, it never reaches a message or a file
        return key


class RetrySection(Section):
    """A retry preset plus field overrides (see `RetryPolicy`)."""

    preset: Literal["default", "interactive", "batch"] = "default"
    max_retries: int | None = Field(default=None, ge=0)
    base: float | None = Field(default=None, ge=0)
    cap: float | None = Field(default=None, ge=0)
    multiplier: float | None = Field(default=None, ge=1)
    jitter: Literal["additive", "full", "none"] | None = None
    max_retry_after: float | None = Field(default=None, ge=0)
    fallback_after: int | None = Field(default=None, ge=1)
    attempt_timeout: float | None = Field(default=None, gt=0)
    deadline: float | None = Field(default=None, gt=0)
    shrink_on_deadline: bool | None = None

    def policy(self) -> RetryPolicy:
        base = {
            "default": RetryPolicy.DEFAULT,
            "interactive": RetryPolicy.INTERACTIVE,
            "batch": RetryPolicy.BATCH,
        }[self.preset]
        changes = {k: v for k, v in self.model_dump(exclude={"preset"}).items() if v is not None}
        return base.with_options(**changes) if changes else base

    @model_validator(mode="after")
    def _consistent(self) -> RetrySection:
        self.policy()  # RetryPolicy's own checks (cap >= base...) as config errors
        return self


class BreakerSection(Section):
    """Circuit breaker overrides (see `BreakerPolicy`)."""

    failure_threshold: int | None = Field(default=None, ge=1)
    failure_ratio: float | None = Field(default=None, gt=0, le=1)
    window: float | None = Field(default=None, gt=0)
    min_calls: int | None = Field(default=None, ge=1)
    cooldown: float | None = Field(default=None, ge=0)
    max_cooldown: float | None = Field(default=None, ge=0)
    storm_after: float | None = Field(default=None, ge=0)
    storm_failures: int | None = Field(default=None, ge=1)
    storm_window: float | None = Field(default=None, gt=0)
    storm_cooldown: float | None = Field(default=None, ge=0)
    half_open_probes: int | None = Field(default=None, ge=1)

    def policy(self) -> BreakerPolicy:
        changes = {k: v for k, v in self.model_dump().items() if v is not None}
        return BreakerPolicy().with_options(**changes)

    @model_validator(mode="after")
    def _consistent(self) -> BreakerSection:
        self.policy()
        return self


class QuotaSection(Section):
    """Quota pacing (see `gemini_guard.quota.QuotaLimiter`); the ledger lives in `store`."""

    enabled: bool = True
    max_wait: float | None = Field(default=None, ge=0)  # None: wait as long as needed
    # The input tokens a call reserves: the local estimate, or the model's countTokens
    # (see gemini_guard.tokens.counter); a function can only be given to the Guard itself.
    token_counter: Literal["estimate", "api"] = "estimate"
    # per model, e.g. {"gemini-2.5-pro": {"rpm": 2}}: replaces only the figures named
    limits: dict[str, dict[LimitName, int]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _positive(self) -> QuotaSection:
        _check_limits(self.limits, "limits")
        return self


class PriceSection(Section):
    """A model's standard prices in USD per 1M tokens, replacing the shipped table's
    (e.g. a negotiated rate, or a model the table does not know)."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)  # None: the shipped figure


class TelemetrySection(Section):
    """Where events go besides code hooks."""

    log: bool = True  # the "gemini_guard" logger
    jsonl: str | None = None  # a JSONL file path; None or "" for none
    metrics: bool = False  # Prometheus metrics (the prometheus extra): guard.metrics
    alerts: bool = False  # alert rules over the events (docs/telemetry.md)
    webhook: str | None = Field(default=None, pattern=r"^https?://")  # POST alerts here
    daily_budget_usd: float | None = Field(default=None, gt=0)  # refuse calls beyond it


class GatewayTokenSection(Section):
    """A client of the gateway: who it is, how its token is known, what it may do.

    The token itself is never written in the configuration: name the environment
    variable that holds it (`token_env`), or give its SHA-256 (`sha256`, hex), which
    lets a file be shared without sharing the token.
    """

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.@-]+$")
    token_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    models: tuple[str, ...] | None = None  # None: every model
    rpm: int | None = Field(default=None, ge=1)
    rpd: int | None = Field(default=None, ge=1)
    usd_per_day: float | None = Field(default=None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _no_literal_tokens(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "token" in data:
            raise ValueError(
                "never put a gateway token in the configuration; name the environment "
                'variable that holds it (token_env = "TEAM_A_TOKEN") or give its '
                "SHA-256 (sha256 = ...)"
            )
        return data

    @model_validator(mode="after")
    def _one_source(self) -> GatewayTokenSection:
        if (self.token_env is None) == (self.sha256 is None):
            raise ValueError(
                f"gateway token {self.name!r} needs exactly one of token_env (the "
                "environment variable holding the token) or sha256 (the token's hash)"
            )
        return self


class GatewaySection(Section):
    """`gemini-guard serve`: who may call it and how much it reads."""

    tokens: tuple[GatewayTokenSection, ...] = ()
    # Gemini's limit for an inline request; a larger body is refused before it is read.
    max_body_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)

    @model_validator(mode="after")
    def _unique_names(self) -> GatewaySection:
        names = [t.name for t in self.tokens]
        if len(set(names)) != len(names):
            raise ValueError(f"gateway token names must be unique, got {names}")
        return self


class GuardConfig(Section):
    """Everything a Guard takes, validated. Build one with `load_config`."""

    tier: TierName = "auto"
    models: tuple[str, ...] = ()
    projects: tuple[ProjectSection, ...] = (ProjectSection(),)
    store: str = Field(default="memory://", pattern=r"^(memory|sqlite|redis)://")
    cache: CacheConfig | None = None
    base_url: str | None = None
    retry: RetrySection = RetrySection()
    breaker: BreakerSection = BreakerSection()
    quota: QuotaSection = QuotaSection()
    telemetry: TelemetrySection = TelemetrySection()
    prices: dict[str, PriceSection] = Field(default_factory=dict)  # per model name
    gateway: GatewaySection = GatewaySection()
    source: str | None = Field(default=None, exclude=True)  # where it was read from

    @model_validator(mode="after")
    def _unique_projects(self) -> GuardConfig:
        names = [p.name for p in self.projects]
        if len(set(names)) != len(names):
            raise ValueError(f"project names must be unique, got {names}")
        if not self.projects:
            raise ValueError("at least one [[projects]] entry is needed")
        return self

    def guard_options(self, *, require_key: bool = True) -> dict[str, Any]:
        """The keyword arguments of the Guard this configuration describes:
        `Guard(**config.guard_options())`.

        API keys are read from the environment variables the projects name. One
        project: its name, tier and limits (over `[quota.limits]`) for the limiter
        the Guard builds. Several: `projects=` for the Guard to pace as one pool,
        which needs every project's key. An unset key of the first project is a
        `ConfigError` unless `require_key=False` (for a caller giving its own client).
        """
        from gemini_guard.telemetry import JsonlSink

        first = self.projects[0]
        telemetry = self.telemetry
        alerts: Any = telemetry.alerts
        if telemetry.webhook:
            from gemini_guard.telemetry.alerts import Alerts

            alerts = Alerts(webhook=telemetry.webhook)
        options: dict[str, Any] = {
            "models": self.models,
            "retry": self.retry.policy(),
            "breaker": self.breaker.policy(),
            "store": self.store,
            "log": telemetry.log,
            "hooks": [JsonlSink(telemetry.jsonl)] if telemetry.jsonl else [],
            "metrics": telemetry.metrics,
            "alerts": alerts,
            "daily_budget_usd": telemetry.daily_budget_usd,
            "token_counter": self.quota.token_counter,
        }
        if self.cache is not None:
            options["cache"] = self.cache
        if self.base_url:
            options["base_url"] = self.base_url
        key = first.api_key()
        if key is not None:
            options["api_key"] = key
        elif require_key:
            raise ConfigError(
                f"projects[0].api_key_env: environment variable {first.api_key_env} is "
                f"not set (config: {self.source or 'defaults'}); export it, or pass your "
                "own client="
            )
        options.update(self._pacing_options())
        return options

    def _pacing_options(self) -> dict[str, Any]:
        quota = self.quota
        if quota.enabled and len(self.projects) > 1:
            return self._pool_options()
        first = self.projects[0]
        options: dict[str, Any] = {"project": first.name, "tier": first.tier or self.tier}
        if not quota.enabled:
            options["quota"] = False
            return options
        # The project's own limits lie over the shared ones; for the one project the
        # Guard paces, that is one table.
        shared, own = _figures(quota.limits), _figures(first.limits)
        limits = {model: {**shared.get(model, {}), **own.get(model, {})} for model in shared | own}
        if limits:
            options["quota_limits"] = limits
        if quota.max_wait is not None:
            options["quota_max_wait"] = quota.max_wait
        return options

    def _pool_options(self) -> dict[str, Any]:
        from gemini_guard.quota.pool import Project

        members = []
        for index, member in enumerate(self.projects):
            key = member.api_key()
            if key is None:
                raise ConfigError(
                    f"projects[{index}].api_key_env: environment variable "
                    f"{member.api_key_env} is not set (config: {self.source or 'defaults'}); "
                    "a pool of several projects needs every project's key"
                )
            members.append(
                Project(
                    member.name,
                    keys=(key,),
                    tier=member.tier or self.tier,
                    limits=_figures(member.limits),
                )
            )
        options: dict[str, Any] = {"projects": members, "tier": self.tier}
        if self.quota.limits:
            options["quota_limits"] = _figures(self.quota.limits)
        if self.quota.max_wait is not None:
            options["quota_max_wait"] = self.quota.max_wait
        return options


def _figures(limits: Mapping[str, Mapping[LimitName, int]]) -> dict[str, dict[str, object]]:
    """Per-model limits as the quota limiter reads them."""
    return {model: {str(name): value for name, value in f.items()} for model, f in limits.items()}


def _env_overrides(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    raw: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    for name, value in env.items():
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper[len(ENV_PREFIX) :] in _NOT_FIELDS:
            continue
        path = tuple(part.lower() for part in upper[len(ENV_PREFIX) :].split("__"))
        node = raw
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            parsed: Any = value
            if path in _LIST_FIELDS:
                parsed = [v.strip() for v in value.split(",") if v.strip()]
            node[path[-1]] = parsed
            origin[path] = name
    return raw, origin


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _section_at(loc: tuple[str, ...]) -> type[Section]:
    """The section a validation error's location points into: `("gateway", "tokens",
    "0")` is a `GatewayTokenSection`, `("prices", "m")` a `PriceSection`."""
    section: type[Section] = GuardConfig
    for part in loc:
        field = section.model_fields.get(part)
        if field is None:
            continue  # a list index or a dict key: the element's type is already taken
        inner = _section_in(field.annotation)
        if inner is None:
            break
        section = inner
    return section


def _section_in(annotation: Any) -> type[Section] | None:
    """The `Section` class inside an annotation (`X`, `X | None`, `tuple[X, ...]`,
    `dict[str, X]`), if there is one."""
    if isinstance(annotation, type) and issubclass(annotation, Section):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _section_in(arg)
        if found is not None:
            return found
    return None


def _describe(exc: ValidationError, source: str, origin: dict[tuple[str, ...], str]) -> str:
    problems = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        field = (
            ".".join(f"[{p}]" if p.isdigit() else p for p in loc).replace(".[", "[")
            or "(top level)"
        )
        where = f"environment variable {origin[loc]}" if loc in origin else source
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            section = _section_at(loc[:-1])
            allowed = ", ".join(sorted(n for n in section.model_fields if n != "source"))
            msg = f"unknown field; allowed here: {allowed}"
        value = ""
        if (
            err["type"] != "extra_forbidden"
            and "input" in err
            and not isinstance(err["input"], dict)
        ):
            value = f" (got {err['input']!r})"
        problems.append(f"{field}{value}: {msg} [{where}]")
    return "invalid gemini-guard configuration: " + "; ".join(problems)


def load_config(
    path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> GuardConfig:
    """Read `path` (default: $GEMINI_GUARD_CONFIG, else ./gemini-guard.toml if present),
    apply GEMINI_GUARD_* environment overrides, and validate."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    chosen = path if path is not None else env.get(f"{ENV_PREFIX}CONFIG")
    source = "defaults"
    if chosen is not None or Path(DEFAULT_FILE).is_file():
        file = Path(chosen if chosen is not None else DEFAULT_FILE).expanduser()
        source = str(file)
        try:
            raw = tomllib.loads(file.read_text("utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"configuration file {file} does not exist; create it or drop --config"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        raw.pop("source", None)
    overrides, origin = _env_overrides(env)
    raw = _merge(raw, overrides)
    for key in ("cache", "base_url"):
        if raw.get(key) == "":
            raw[key] = None
    if isinstance(raw.get("telemetry"), dict) and raw["telemetry"].get("jsonl") == "":
        raw["telemetry"]["jsonl"] = None
    try:
        config = GuardConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, origin)) from None
    return config.model_copy(update={"source": source})
