"""The shipped table of Gemini models: rate limits per tier, token limits, prices.

The data lives in `data/models.toml` so it can be read and updated without code;
`load_models()` parses it once. Users override any figure through configuration.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

__all__ = [
    "LONG_CONTEXT_TOKENS",
    "TIERS",
    "CallRates",
    "Limits",
    "ModelSpec",
    "Prices",
    "Tier",
    "call_rates",
    "load_models",
    "model_spec",
]

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
    """USD per 1M tokens at standard (not Batch API) prices."""

    input: float
    output: float
    cached_input: float


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    input_token_limit: int
    output_token_limit: int
    price: Prices
    tiers: dict[str, Limits] = field(default_factory=dict)

    def limits(self, tier: str) -> Limits:
        try:
            return self.tiers[tier]
        except KeyError:
            raise KeyError(
                f"no limits for tier {tier!r} of {self.name}; known tiers: {', '.join(self.tiers)}"
            ) from None


def _spec(name: str, raw: dict[str, Any]) -> ModelSpec:
    return ModelSpec(
        name=name,
        input_token_limit=int(raw["input_token_limit"]),
        output_token_limit=int(raw["output_token_limit"]),
        price=Prices(**raw["price"]),
        tiers={tier: Limits(**limits) for tier, limits in raw.get("tiers", {}).items()},
    )


@functools.cache
def _raw_models() -> dict[str, Any]:
    text = resources.files("gemini_guard").joinpath("data/models.toml").read_text("utf-8")
    models: dict[str, Any] = tomllib.loads(text)["models"]
    return models


@functools.cache
def load_models() -> dict[str, ModelSpec]:
    """Every model in the shipped table, by name."""
    return {name: _spec(name, spec) for name, spec in _raw_models().items()}


# Google bills a prompt above this many tokens at a model's long-context prices,
# where it publishes them.
LONG_CONTEXT_TOKENS = 200_000
# The Batch API's discount where the table gives none of its own.
_BATCH_DISCOUNT = 0.5


@dataclass(frozen=True, slots=True)
class CallRates:
    """The USD per 1M tokens one call is billed at (its prompt size and API chosen)."""

    input: float
    output: float  # thinking tokens too
    cached_input: float


def call_rates(model: str, *, prompt_tokens: int = 0, batch: bool = False) -> CallRates | None:
    """The rates of one call of `model` (None for a model not in the table).

    A model's entry may carry `price_long_context = {input, output, cached_input}`
    (prompts above 200k tokens) and `batch_discount` (a fraction, e.g. 0.5); without
    them the standard prices apply, and the Batch API costs half.
    """
    name = model.removeprefix("models/")
    raw = _raw_models().get(name)
    if raw is None:
        return None
    price = raw["price"]
    if prompt_tokens > LONG_CONTEXT_TOKENS and "price_long_context" in raw:
        price = {**price, **raw["price_long_context"]}
    factor = 1.0 - float(raw.get("batch_discount", _BATCH_DISCOUNT)) if batch else 1.0
    return CallRates(
        input=float(price["input"]) * factor,
        output=float(price["output"]) * factor,
        cached_input=float(price["cached_input"]) * factor,
    )


def model_spec(model: str) -> ModelSpec | None:
    """The shipped spec of `model` ("models/" prefix allowed), or None when unknown."""
    return load_models().get(model.removeprefix("models/"))
