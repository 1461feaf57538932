"""Which limits apply to a (project, model): the shipped tier table, then overrides.

Three layers, each replacing only the figures it names: the tier table, then the
per-model overrides that hold for every project, then a project's own per-model limits
(Vertex AI's provisioned throughput, a raised quota: bought for one project, not all).

`tier="auto"` (the default) knows no limits up front: a paid project must never be
slowed to free-tier rates by a guess. The limiter paces such a project once the
server has revealed its limits in a 429 (see `adaptive`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Literal, get_args

from gemini_guard.errors import ConfigError
from gemini_guard.tiers import COUNT_TOKENS_RPM, Limits, counted_model, model_spec

__all__ = [
    "LimitPolicy",
    "TierChoice",
    "normalize_model",
    "parse_limits",
    "parse_model_limits",
    "parse_tier",
]

TierChoice = Literal["free", "tier1", "tier2", "tier3", "auto"]
_TIER_CHOICES: tuple[str, ...] = get_args(TierChoice)
_LIMIT_FIELDS = tuple(f.name for f in fields(Limits))


# No Gemini model id has these, and they would confuse a store key (Redis hash tags
# and separators).
_NOT_IN_MODEL_IDS = frozenset("{}:/ \t\n")


def normalize_model(model: str) -> str:
    """`models/gemini-2.5-flash` and `gemini-2.5-flash` name the same quota."""
    name = model.removeprefix("models/")
    # (isdisjoint runs in C: this is on every tallied attempt.)
    if not name or not _NOT_IN_MODEL_IDS.isdisjoint(name):
        raise ConfigError(
            f"model name {model!r} is not a Gemini model id; use a name such as "
            "'gemini-2.5-flash' (optionally prefixed with 'models/')"
        )
    return name


def parse_tier(value: object, *, field_name: str = "tier") -> TierChoice:
    """Validate a tier name, with an error that lists the allowed ones."""
    if isinstance(value, str) and value in _TIER_CHOICES:
        return value  # type: ignore[return-value]  # checked against the Literal above
    raise ConfigError(
        f"{field_name}={value!r} is not a tier; use one of {', '.join(_TIER_CHOICES)}"
    )


def parse_limits(value: Limits | Mapping[str, object], *, field_name: str) -> Limits:
    """Limits from a `Limits` or a mapping such as `{"rpm": 5, "rpd": 100}`."""
    if isinstance(value, Limits):
        raw: Mapping[str, object] = {name: getattr(value, name) for name in _LIMIT_FIELDS}
    elif isinstance(value, Mapping):
        raw = value
    else:
        raise ConfigError(f"{field_name} must be a mapping like {{'rpm': 5}}, got {value!r}")
    unknown = sorted(set(raw) - set(_LIMIT_FIELDS))
    if unknown:
        raise ConfigError(
            f"{field_name} has unknown key(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(_LIMIT_FIELDS)}"
        )
    checked: dict[str, int | None] = {}
    for name, number in raw.items():
        if number is None:
            checked[name] = None
        elif isinstance(number, int) and not isinstance(number, bool) and number > 0:
            checked[name] = number
        else:
            raise ConfigError(
                f"{field_name}.{name}={number!r} is not a limit; use a positive integer, "
                "or leave it out for no limit"
            )
    return Limits(**checked)


def parse_model_limits(value: object, *, field_name: str) -> MappingProxyType[str, Limits]:
    """Per-model limits, `{"gemini-2.5-pro": {"rpm": 2}}`, each validated."""
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{field_name} must map a model to its limits, like "
            f"{{'gemini-2.5-pro': {{'rpm': 5}}}}; got {value!r}"
        )
    return MappingProxyType(
        {
            normalize_model(model): parse_limits(figures, field_name=f"{field_name}.{model}")
            for model, figures in value.items()
        }
    )


@dataclass(frozen=True, slots=True)
class LimitPolicy:
    """Configured limits: a default tier, per-project tiers, per-model overrides.

    An override replaces only the figures it names: `{"gemini-2.5-pro": {"rpm": 2}}`
    keeps the tier's TPM and RPD for that model.
    """

    tier: TierChoice = "auto"
    project_tiers: Mapping[str, TierChoice] = field(default_factory=dict)
    overrides: Mapping[str, Limits] = field(default_factory=dict)
    # project -> model -> limits: replace the figures they name for that project only.
    project_overrides: Mapping[str, Mapping[str, Limits]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        *,
        tier: str = "auto",
        project_tiers: Mapping[str, str] | None = None,
        overrides: Mapping[str, Limits | Mapping[str, object]] | None = None,
        project_limits: Mapping[str, Mapping[str, Limits | Mapping[str, object]]] | None = None,
    ) -> LimitPolicy:
        """Validate configuration into a policy; errors name the offending field."""
        tiers = {
            project: parse_tier(value, field_name=f"projects.{project}.tier")
            for project, value in (project_tiers or {}).items()
        }
        models = parse_model_limits(overrides or {}, field_name="limits")
        per_project = {
            project: parse_model_limits(value, field_name=f"projects.{project}.limits")
            for project, value in (project_limits or {}).items()
            if value
        }
        return cls(
            tier=parse_tier(tier),
            project_tiers=MappingProxyType(tiers),
            overrides=MappingProxyType(models),
            project_overrides=MappingProxyType(per_project),
        )

    def tier_of(self, project: str) -> TierChoice:
        return self.project_tiers.get(project, self.tier)

    def configured(self, project: str, model: str, *, tier: str | None = None) -> Limits:
        """The configured limits of `model` in `project` (all None: not known).

        `tier` replaces the project's tier (the limiter passes the tier the server
        revealed for an "auto" project).
        """
        chosen = tier if tier is not None else self.tier_of(project)
        base = Limits()
        if chosen != "auto" and counted_model(model) is not None:
            base = Limits(rpm=COUNT_TOKENS_RPM)  # countTokens: its own quota, every tier
        elif chosen != "auto":
            spec = model_spec(model)
            if spec is not None and chosen in spec.tiers:
                base = spec.tiers[chosen]
        limits = _over(base, self.overrides.get(model))
        return _over(limits, self.project_overrides.get(project, {}).get(model))


def _over(base: Limits, override: Limits | None) -> Limits:
    """`base` with the figures `override` names replaced."""
    if override is None:
        return base
    return Limits(
        **{
            name: getattr(override, name)
            if getattr(override, name) is not None
            else getattr(base, name)
            for name in _LIMIT_FIELDS
        }
    )
