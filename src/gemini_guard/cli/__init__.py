"""The `gemini-guard` command. Each subcommand lives in its own module here.

Subcommand modules are imported only when their command runs, so `gemini-guard
diagnose` does not pay for importing the emulator's web stack.
"""

from __future__ import annotations

import importlib

import click

from gemini_guard import __version__

# name -> module that defines it (each module registers its command on `main`).
_SUBCOMMANDS = {
    "batch": "gemini_guard.cli.batch",
    "demo": "gemini_guard.cli.demo",
    "diagnose": "gemini_guard.cli.diagnose",
    "doctor": "gemini_guard.cli.doctor",
    "emulate": "gemini_guard.cli.emulate",
    "models": "gemini_guard.cli.models",
    "plan": "gemini_guard.cli.plan",
    "quota": "gemini_guard.cli.quota",
    "report": "gemini_guard.cli.report",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_SUBCOMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in _SUBCOMMANDS:
            importlib.import_module(_SUBCOMMANDS[cmd_name])
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gemini-guard")
def main() -> None:
    """Keep applications that call the Gemini API working through its errors."""
