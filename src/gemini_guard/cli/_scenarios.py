"""The scenarios the CLI knows by name: the emulator's built-ins and the demo's bad day.

`bad-day` is composed from two built-ins (the December 2025 cut in force from the
start, plus the 503 storm on gemini-2.5-pro), so it has no TOML file of its own; every
command that takes a scenario name resolves it here, so `emulate --scenario bad-day`,
`batch --emulate bad-day` and `emulate --list-scenarios` agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import click

    from gemini_guard.emulator import Scenario

__all__ = [
    "BAD_DAY",
    "bad_day_scenario",
    "check_scenario_name",
    "complete_scenario",
    "resolve_scenario",
    "scenario_names",
]

BAD_DAY = "bad-day"


def bad_day_scenario() -> Scenario:
    """The December cut in force from the start, plus the 503 storm on pro."""
    from gemini_guard.emulator import Scenario, load_scenario

    cut = load_scenario("dec-2025-cut")
    storm = load_scenario("overload")
    return Scenario(
        name=BAD_DAY,
        description="dec-2025-cut limits from t=0 plus overload's 503 storm on pro",
        description_zh="从 t=0 起实行 dec-2025-cut 的限额，再加上 overload 在 pro 上的 503 风暴",
        seed=7,
        default_tier="free",
        limit_changes=tuple(c.model_copy(update={"at": 0.0}) for c in cut.limit_changes),
        faults=tuple(f.model_copy(update={"start": 0.0, "end": None}) for f in storm.faults),
        latency=storm.latency,
    )


def scenario_names(lang: str = "en") -> dict[str, str]:
    """Name -> one-line description, in `lang`, of every scenario a command accepts by name."""
    from gemini_guard.emulator import builtin_scenarios

    names = builtin_scenarios(lang=lang)
    names[BAD_DAY] = bad_day_scenario().describe(lang)
    return dict(sorted(names.items()))


def check_scenario_name(name: str, param_hint: str) -> None:
    """A name no scenario has ends in a usage error listing the names, in the user's
    language; a path (with / or .toml) is left for the loader to read."""
    import click

    from gemini_guard.cli._i18n import _

    if "/" in name or name.endswith(".toml") or name in scenario_names():
        return
    raise click.BadParameter(
        _(
            "unknown scenario {name!r}; the names are: {names} (or give the path of a .toml file)",
            name=name,
            names=", ".join(scenario_names()),
        ),
        param_hint=param_hint,
    )


def resolve_scenario(name: str) -> Scenario | str | Path:
    """What `Emulator`/`serve` take for `name`: the composed bad day, else the name or path."""
    if name == BAD_DAY:
        return bad_day_scenario()
    return name


def complete_scenario(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion for a scenario option: the names that start with what was typed."""
    return [name for name in scenario_names() if name.startswith(incomplete)]
