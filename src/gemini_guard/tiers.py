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

__all__ = ["TIERS", "Limits", "ModelSpec", "Prices", "Tier", "load_models", "model_spec"]

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
def load_models() -> dict[str, ModelSpec]:
    """Every model in the shipped table, by name."""
    text = resources.files("gemini_guard").joinpath("data/models.toml").read_text("utf-8")
    raw = tomllib.loads(text)
    return {name: _spec(name, spec) for name, spec in raw["models"].items()}


def model_spec(model: str) -> ModelSpec | None:
    """The shipped spec of `model` ("models/" prefix allowed), or None when unknown."""
    return load_models().get(model.removeprefix("models/"))
