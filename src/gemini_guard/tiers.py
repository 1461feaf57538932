"""The shipped table of Gemini models: rate limits per tier, token limits, prices.

The data lives in `data/models.toml` so it can be read and updated without code;
`load_models()` parses it once. Users override any figure through configuration, and
`gemini-guard models --refresh` writes a local table from the API's models.list
(token limits and methods) that `load_models()` lays over the shipped one: the file
named by $GEMINI_GUARD_MODEL_TABLE, else $XDG_CONFIG_HOME/gemini-guard/models.toml
(~/.config/...) when it exists.

A model absent from every table is not an error anywhere: `model_spec()` returns
None and each caller does without (the limiter learns the limits from 429s, `plan`
estimates tokens and says what it cannot price).
"""

from __future__ import annotations

import functools
import os
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "COUNT_TOKENS_RPM",
    "GENERATE_METHODS",
    "LONG_CONTEXT_THRESHOLD",
    "OVERRIDE_ENV",
    "TIERS",
    "CallRates",
    "Limits",
    "ModelSpec",
    "Prices",
    "Tier",
    "call_rates",
    "count_tokens_quota",
    "counted_model",
    "load_models",
    "model_spec",
    "override_path",
    "shipped_models",
]

# Prompts longer than this are billed at a model's long-context prices, where it has them.
LONG_CONTEXT_THRESHOLD = 200_000
# Not GEMINI_GUARD_MODELS: that variable is the configuration's fallback chain.
OVERRIDE_ENV = "GEMINI_GUARD_MODEL_TABLE"
GENERATE_METHODS: tuple[str, ...] = (
    "generateContent",
    "countTokens",
    "createCachedContent",
    "batchGenerateContent",
)

# countTokens has a quota of its own, apart from the model's generation quota, on
# every tier: 3,000 requests per minute per project and model (Google's rate-limits
# page). It is free. Its ledger, breaker and limits are named `count_tokens_quota(m)`.
COUNT_TOKENS_RPM = 3000
_COUNT_TOKENS_SUFFIX = "+countTokens"

Tier = Literal["free", "tier1", "tier2", "tier3"]
TIERS: tuple[Tier, ...] = ("free", "tier1", "tier2", "tier3")


@dataclass(frozen=True, slots=True)
class Limits:
    """Rate limits of one model on one tier; None means the tier sets no such limit."""

    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None
    tpd: int | None = None


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per 1M tokens at standard (not Batch API) prices.

    `*_long` are the prices of a request whose prompt is over LONG_CONTEXT_THRESHOLD
    tokens (None: the same as the short ones); `batch_discount` is the fraction the
    Batch API takes off every price (0.5: half price).
    """

    input: float
    output: float
    cached_input: float
    input_long: float | None = None
    output_long: float | None = None
    cached_input_long: float | None = None
    batch_discount: float = 0.5

    def for_prompt(self, prompt_tokens: int, *, batch: bool = False) -> Prices:
        """The prices that apply to one request with `prompt_tokens` of input."""
        long = prompt_tokens > LONG_CONTEXT_THRESHOLD
        factor = 1.0 - self.batch_discount if batch else 1.0

        def pick(short: float, over: float | None) -> float:
            return (over if long and over is not None else short) * factor

        return Prices(
            input=pick(self.input, self.input_long),
            output=pick(self.output, self.output_long),
            cached_input=pick(self.cached_input, self.cached_input_long),
            batch_discount=self.batch_discount,
        )

    def cost(
        self,
        prompt_tokens: int,
        output_tokens: int,
        *,
        cached_tokens: int = 0,
        batch: bool = False,
    ) -> float:
        """USD for one request: its uncached and cached input, and its output (thinking
        included), at the prices its prompt length and the Batch API call for."""
        rates = self.for_prompt(prompt_tokens, batch=batch)
        fresh = max(0, prompt_tokens - cached_tokens)
        return (
            fresh * rates.input + cached_tokens * rates.cached_input + output_tokens * rates.output
        ) / 1_000_000


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model: token limits, prices (None: not published or not known), limits per
    tier (empty: none published), the API methods it serves, and when it was checked."""

    name: str
    input_token_limit: int
    output_token_limit: int
    price: Prices | None
    tiers: dict[str, Limits] = field(default_factory=dict)
    methods: tuple[str, ...] = GENERATE_METHODS
    status: Literal["stable", "preview"] = "stable"
    checked: str | None = None  # the date the figures were checked against Google's pages
    source: Literal["shipped", "models.list"] = "shipped"

    @property
    def can_generate(self) -> bool:
        return "generateContent" in self.methods

    def limits(self, tier: str) -> Limits:
        try:
            return self.tiers[tier]
        except KeyError:
            raise KeyError(
                f"no limits for tier {tier!r} of {self.name}; known tiers: {', '.join(self.tiers)}"
            ) from None


def _spec(name: str, raw: dict[str, Any], *, checked: str | None) -> ModelSpec:
    price = raw.get("price")
    return ModelSpec(
        name=name,
        input_token_limit=int(raw["input_token_limit"]),
        output_token_limit=int(raw["output_token_limit"]),
        price=Prices(**price) if price is not None else None,
        tiers={tier: Limits(**limits) for tier, limits in raw.get("tiers", {}).items()},
        methods=tuple(raw.get("methods", GENERATE_METHODS)),
        status=raw.get("status", "stable"),
        checked=raw.get("checked", checked),
    )


def override_path() -> Path:
    """Where the local table written by `gemini-guard models --refresh` lives."""
    named = os.environ.get(OVERRIDE_ENV)
    if named:
        return Path(named).expanduser()
    # os.path.expanduser never raises: without a home it leaves "~" (no such file).
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(config) / "gemini-guard" / "models.toml"


def _overlay(models: dict[str, ModelSpec], path: Path) -> None:
    """Lay the local table's token limits and methods over `models` (in place).

    The local table comes from models.list, which says nothing of rate limits or
    prices: a model it adds has none; a model both know keeps the shipped ones.
    """
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except OSError:
        return
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(
            f"{path}: invalid TOML ({exc}); rewrite it with `gemini-guard models --refresh` "
            f"or delete it"
        ) from exc
    for name, entry in raw.get("models", {}).items():
        listed = ModelSpec(
            name=name,
            input_token_limit=int(entry["input_token_limit"]),
            output_token_limit=int(entry["output_token_limit"]),
            price=None,
            methods=tuple(entry.get("methods", GENERATE_METHODS)),
            status="preview" if "preview" in name else "stable",
            checked=raw.get("checked"),
            source="models.list",
        )
        shipped = models.get(name)
        if shipped is not None:
            listed = ModelSpec(
                name=name,
                input_token_limit=listed.input_token_limit,
                output_token_limit=listed.output_token_limit,
                price=shipped.price,
                tiers=shipped.tiers,
                methods=listed.methods,
                status=shipped.status,
                checked=listed.checked,
                source="models.list",
            )
        models[name] = listed


def shipped_models() -> dict[str, ModelSpec]:
    """Every model in the table shipped with gemini-guard, by name (no local overlay)."""
    text = resources.files("gemini_guard").joinpath("data/models.toml").read_text("utf-8")
    raw = tomllib.loads(text)
    checked = raw.get("checked")
    return {name: _spec(name, spec, checked=checked) for name, spec in raw["models"].items()}


@functools.cache
def load_models() -> dict[str, ModelSpec]:
    """Every model in the shipped table, with the local table from models.list laid over."""
    models = shipped_models()
    _overlay(models, override_path())
    return models


@dataclass(frozen=True, slots=True)
class CallRates:
    """The USD per 1M tokens one call is billed at (its prompt size and API chosen)."""

    input: float
    output: float  # thinking tokens too
    cached_input: float


def call_rates(model: str, *, prompt_tokens: int = 0, batch: bool = False) -> CallRates | None:
    """The rates of one call of `model`: its long-context prices above
    LONG_CONTEXT_THRESHOLD prompt tokens, the Batch API's discount when `batch`
    (None for a model with no known prices)."""
    spec = model_spec(model)
    if spec is None or spec.price is None:
        return None
    rates = spec.price.for_prompt(prompt_tokens, batch=batch)
    return CallRates(input=rates.input, output=rates.output, cached_input=rates.cached_input)


def count_tokens_quota(model: str) -> str:
    """The name countTokens calls of `model` are metered under (their quota ledger,
    breaker and `limits` override): `gemini-2.5-flash+countTokens`."""
    return model.removeprefix("models/") + _COUNT_TOKENS_SUFFIX


def counted_model(name: str) -> str | None:
    """The model of a `count_tokens_quota` name (None: `name` is not one)."""
    return name.removesuffix(_COUNT_TOKENS_SUFFIX) if name.endswith(_COUNT_TOKENS_SUFFIX) else None


def model_spec(model: str) -> ModelSpec | None:
    """The shipped spec of `model` ("models/" prefix allowed), or None when unknown."""
    return load_models().get(model.removeprefix("models/"))
