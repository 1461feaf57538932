from __future__ import annotations

import pytest

from gemini_guard.tiers import TIERS, load_models, model_spec


def test_free_tier_table_matches_the_published_figures() -> None:
    free = {name: spec.limits("free") for name, spec in load_models().items()}
    assert (free["gemini-2.5-pro"].rpm, free["gemini-2.5-pro"].tpm, free["gemini-2.5-pro"].rpd) == (
        5,
        250_000,
        100,
    )
    assert (free["gemini-2.5-flash"].rpm, free["gemini-2.5-flash"].rpd) == (10, 250)
    assert (free["gemini-2.5-flash-lite"].rpm, free["gemini-2.5-flash-lite"].rpd) == (15, 1_000)
    assert model_spec("gemini-2.5-flash").limits("tier1").rpm == 2_000  # type: ignore[union-attr]


def test_every_model_has_every_tier_and_a_price() -> None:
    for spec in load_models().values():
        assert set(spec.tiers) == set(TIERS)
        assert spec.price.cached_input < spec.price.input < spec.price.output
        # Paid tiers are never stricter than the free tier.
        assert spec.limits("tier1").rpm >= spec.limits("free").rpm  # type: ignore[operator]


def test_model_spec_accepts_the_resource_name_and_knows_unknowns() -> None:
    spec = model_spec("models/gemini-2.5-flash")
    assert spec is not None
    assert spec.price.input == 0.30
    assert model_spec("gemini-9-ultra") is None


def test_unknown_tier_names_the_known_ones() -> None:
    spec = model_spec("gemini-2.5-pro")
    assert spec is not None
    with pytest.raises(KeyError, match="known tiers: free, tier1, tier2, tier3"):
        spec.limits("platinum")
