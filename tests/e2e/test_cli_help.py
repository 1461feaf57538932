"""Every subcommand named in the lazy mapping loads and documents itself."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from gemini_guard.cli import _SUBCOMMANDS, main


def test_the_top_level_help_lists_every_subcommand() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    for name in _SUBCOMMANDS:
        assert f"  {name} " in result.output


@pytest.mark.parametrize("name", sorted(_SUBCOMMANDS))
def test_each_subcommand_loads_and_has_help(name: str) -> None:
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: main {name}" in result.output or f"Usage: gemini-guard {name}" in result.output


def test_an_unknown_subcommand_is_a_clear_error() -> None:
    result = CliRunner().invoke(main, ["diagnos"])
    assert result.exit_code == 2
    assert "No such command 'diagnos'" in result.output
