from __future__ import annotations

import tomllib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from gemini_guard.tiers import (
    OVERRIDE_ENV,
    TIERS,
    Prices,
    load_models,
    model_spec,
    override_path,
    shipped_models,
)
from gemini_guard.validation import ModelInfo
from gemini_guard.validation._retired import retired_model


def test_free_tier_table_matches_the_published_figures() -> None:
    free = {name: spec.limits("free") for name, spec in shipped_models().items() if spec.tiers}
    assert (free["gemini-2.5-pro"].rpm, free["gemini-2.5-pro"].tpm, free["gemini-2.5-pro"].rpd) == (
        5,
        250_000,
        100,
    )
    assert (free["gemini-2.5-flash"].rpm, free["gemini-2.5-flash"].rpd) == (10, 250)
    assert (free["gemini-2.5-flash-lite"].rpm, free["gemini-2.5-flash-lite"].rpd) == (15, 1_000)
    assert model_spec("gemini-2.5-flash").limits("tier1").rpm == 2_000  # type: ignore[union-attr]


def test_the_2_5_models_have_every_tier() -> None:
    for name in ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite"):
        assert set(shipped_models()[name].tiers) == set(TIERS)


def test_every_model_is_consistent_and_dated() -> None:
    for spec in shipped_models().values():
        assert spec.checked, spec.name
        assert spec.input_token_limit > 0
        # Paid tiers are never stricter than the free tier.
        if "free" in spec.tiers and "tier1" in spec.tiers:
            assert spec.limits("tier1").rpm >= spec.limits("free").rpm  # type: ignore[operator]
        price = spec.price
        assert price is not None, spec.name
        assert price.cached_input <= price.input
        if spec.can_generate:
            assert price.input < price.output
        if price.input_long is not None:
            assert price.input_long > price.input
            assert price.output_long is not None
            assert price.output_long > price.output


def test_the_gemini_3_previews_are_priced_without_published_limits() -> None:
    for name in ("gemini-3.1-pro-preview", "gemini-3-pro-preview", "gemini-3-flash-preview"):
        spec = model_spec(name)
        assert spec is not None
        assert spec.status == "preview"
        assert spec.tiers == {}
        assert spec.input_token_limit == 1_048_576
        assert spec.output_token_limit == 65_536
    pro = model_spec("gemini-3.1-pro-preview")
    assert pro is not None
    assert pro.price == Prices(2.0, 12.0, 0.2, 4.0, 18.0, 0.4)


def test_embedding_models_do_not_generate() -> None:
    spec = model_spec("gemini-embedding-001")
    assert spec is not None
    assert not spec.can_generate
    assert not ModelInfo.from_spec(spec).can_generate
    assert ModelInfo.from_spec(model_spec("gemini-2.5-flash")).can_generate  # type: ignore[arg-type]


def test_no_shipped_model_is_marked_retired() -> None:
    for name in shipped_models():
        assert retired_model(name) is None, name


def test_prices_for_long_prompts_and_the_batch_api() -> None:
    pro = model_spec("gemini-2.5-pro")
    assert pro is not None
    assert pro.price is not None
    short = pro.price.cost(200_000, 1_000)  # at the threshold: short prices
    assert short == pytest.approx((200_000 * 1.25 + 1_000 * 10.0) / 1e6)
    long = pro.price.cost(200_001, 1_000, cached_tokens=100_000)
    assert long == pytest.approx((100_001 * 2.5 + 100_000 * 0.25 + 1_000 * 15.0) / 1e6)
    assert pro.price.cost(1_000, 1_000, batch=True) == pytest.approx(
        pro.price.cost(1_000, 1_000) / 2
    )
    flash = model_spec("gemini-2.5-flash")
    assert flash is not None
    assert flash.price is not None
    assert flash.price.for_prompt(500_000) == flash.price  # no long-context price


def test_model_spec_accepts_the_resource_name_and_knows_unknowns() -> None:
    spec = model_spec("models/gemini-2.5-flash")
    assert spec is not None
    assert spec.price is not None
    assert spec.price.input == 0.30
    assert model_spec("gemini-9-ultra") is None


def test_unknown_tier_names_the_known_ones() -> None:
    spec = model_spec("gemini-2.5-pro")
    assert spec is not None
    with pytest.raises(KeyError, match="known tiers: free, tier1, tier2, tier3"):
        spec.limits("platinum")


def test_the_shipped_file_checked_date_is_set() -> None:
    text = resources.files("gemini_guard").joinpath("data/models.toml").read_text("utf-8")
    assert tomllib.loads(text)["checked"]


@pytest.fixture
def local_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "models.toml"
    monkeypatch.setenv(OVERRIDE_ENV, str(path))
    load_models.cache_clear()
    yield path
    monkeypatch.delenv(OVERRIDE_ENV)
    load_models.cache_clear()


def test_the_local_table_adds_models_and_keeps_shipped_prices(local_table: Path) -> None:
    assert override_path() == local_table
    local_table.write_text(
        'checked = "2026-12-04"\n'
        '[models."gemini-9-ultra"]\ninput_token_limit = 2000000\noutput_token_limit = 1000\n'
        '[models."gemini-2.5-flash"]\ninput_token_limit = 1000000\noutput_token_limit = 9\n'
    )
    new = model_spec("gemini-9-ultra")
    assert new is not None
    assert (new.input_token_limit, new.price, new.tiers) == (2_000_000, None, {})
    assert new.source == "models.list"
    flash = model_spec("gemini-2.5-flash")
    assert flash is not None
    assert (flash.input_token_limit, flash.output_token_limit) == (1_000_000, 9)
    assert flash.price == shipped_models()["gemini-2.5-flash"].price
    assert flash.tiers == shipped_models()["gemini-2.5-flash"].tiers


def test_a_missing_local_table_is_no_table_and_a_broken_one_is_named(local_table: Path) -> None:
    assert load_models().keys() == shipped_models().keys()
    local_table.write_text("[models\n")
    load_models.cache_clear()
    with pytest.raises(ValueError, match="invalid TOML"):
        load_models()


def test_the_default_local_table_is_under_the_config_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(OVERRIDE_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert override_path() == tmp_path / "gemini-guard" / "models.toml"
