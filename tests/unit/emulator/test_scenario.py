"""Scenarios as data: built-ins load, and a malformed file says which line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from gemini_guard.emulator import Scenario, builtin_scenarios, load_scenario, parse_scenario
from gemini_guard.errors import ScenarioError

BUILT_INS = ("healthy", "free-tier", "dec-2025-cut", "overload", "phantom-429", "flaky")


@pytest.mark.parametrize("name", BUILT_INS)
def test_every_built_in_loads_and_is_described(name: str) -> None:
    scenario = load_scenario(name)
    assert scenario.name == name
    assert scenario.description
    assert name in builtin_scenarios()


def test_dec_2025_cut_lowers_free_limits_by_half_to_four_fifths() -> None:
    from gemini_guard.tiers import model_spec

    scenario = load_scenario("dec-2025-cut")
    assert scenario.limit_changes
    for change in scenario.limit_changes:
        spec = model_spec(change.model)
        assert spec is not None
        before = spec.limits("free")
        for kind in ("rpm", "tpm", "rpd"):
            after = getattr(change, kind)
            assert after is not None
            cut = 1 - after / getattr(before, kind)
            assert 0.5 <= cut <= 0.8, (change.model, kind, cut)


def test_a_file_path_loads_and_takes_its_name_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "my-day.toml"
    path.write_text('seed = 9\n[keys.k1]\nproject = "alpha"\ntier = "tier1"\n')
    scenario = load_scenario(path)
    assert scenario.name == "my-day"
    assert scenario.keys["k1"].project == "alpha"
    assert load_scenario(str(path)).seed == 9


def test_a_scenario_object_and_a_dict_are_accepted() -> None:
    scenario = Scenario(name="x")
    assert load_scenario(scenario) is scenario
    assert load_scenario({"name": "y", "quotas": False}).quotas is False


def test_unknown_built_in_lists_the_built_ins() -> None:
    with pytest.raises(ScenarioError, match="free-tier") as info:
        load_scenario("nope")
    assert "nope" in str(info.value)


def test_toml_syntax_error_names_the_line() -> None:
    text = 'name = "x"\nseed = 1\n[[faults]\nkind = "internal"\n'
    with pytest.raises(ScenarioError, match=r"line 3") as info:
        parse_scenario(text, source="bad.toml")
    assert "bad.toml" in str(info.value)


def test_schema_error_names_the_field_and_its_line() -> None:
    text = "\n".join(
        [
            'name = "x"',
            "[[faults]]",
            'kind = "internal"',
            "probability = 0.5",
            "",
            "[[faults]]",
            'kind = "overloaded"',
            "probability = 1.5",
        ]
    )
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, source="s.toml")
    message = str(info.value)
    assert "line 8" in message
    assert "faults[1].probability" in message
    assert "1.5" in message


def test_unknown_field_is_rejected_with_the_allowed_names() -> None:
    text = 'name = "x"\n\n[keys.k1]\nproject = "p"\nteir = "tier1"\n'
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text)
    message = str(info.value)
    assert "line 5" in message
    assert "keys.k1.teir" in message
    assert "tier" in message
    assert "project" in message


def test_inline_table_errors_point_at_their_line() -> None:
    text = 'name = "x"\n[limits."gemini-2.5-flash"]\nfree = { rpm = -1 }\n'
    with pytest.raises(ScenarioError, match=r"line 3: limits\.gemini-2\.5-flash\.free\.rpm"):
        parse_scenario(text)


def test_bad_values_are_explained() -> None:
    with pytest.raises(ScenarioError, match="end"):
        parse_scenario('[[faults]]\nkind = "internal"\nstart = 10\nend = 5\n')
    with pytest.raises(ScenarioError, match="kind"):
        parse_scenario('[[faults]]\nkind = "meltdown"\n')
    with pytest.raises(ScenarioError, match="time order"):
        parse_scenario("[[limit_changes]]\nat = 10\nrpm = 1\n[[limit_changes]]\nat = 5\nrpm = 2\n")
    with pytest.raises(ScenarioError, match="state"):
        parse_scenario('[keys.k]\nproject = "p"\nstate = "stolen"\n')


def test_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "absent.toml")
