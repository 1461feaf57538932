"""The `gemini-guard` command. Each subcommand lives in its own module here.

Subcommand modules are imported only when their command runs, so `gemini-guard
diagnose` does not pay for importing the emulator's web stack. The conventions every
command shares (exit codes, `--json`, `--lang`, `--debug`, one-line errors) live in
`gemini_guard.cli._common`.
"""

from __future__ import annotations

import errno
import importlib
from typing import Any

import click

from gemini_guard import __version__
from gemini_guard.cli._common import (
    EXIT_CODES,
    EXIT_INTERRUPTED,
    EXIT_PROBLEM,
    Failure,
    GuardCommand,
    debug_enabled,
    os_error_line,
    write_options,
)
from gemini_guard.cli._i18n import _, current_lang, help_key, set_lang, translate

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
    "serve": "gemini_guard.cli.serve",
}

_ARGV_KEY = "gemini_guard.argv"
_COMPLETION = (
    'Shell completion: eval "$(_GEMINI_GUARD_COMPLETE=bash_source gemini-guard)" '
    "(zsh_source, fish_source for those shells)."
)


class _LazyGroup(click.Group):
    # Every `@main.command()` gets --lang, --debug and the exit codes in its help.
    command_class = GuardCommand

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_SUBCOMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in _SUBCOMMANDS:
            importlib.import_module(_SUBCOMMANDS[cmd_name])
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; an ordinary mistake ends in one line, not a traceback."""
        from gemini_guard._extras import MissingExtra
        from gemini_guard.errors import GuardError

        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise _told(exc, ctx.meta.get(_ARGV_KEY, [])) from None
        except KeyboardInterrupt:
            if debug_enabled():
                raise
            click.echo(f"\ngemini-guard: {_('interrupted')}", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except (MissingExtra, GuardError, UnicodeDecodeError) as exc:
            if debug_enabled():
                raise
            raise Failure(str(exc)) from exc
        except OSError as exc:
            if debug_enabled() or exc.errno == errno.EPIPE:
                raise
            raise Failure(os_error_line(exc)) from exc

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        given = list(args)  # parsing consumes the list
        try:
            ctx = super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            raise _told(exc, given) from None
        ctx.meta[_ARGV_KEY] = given
        return ctx

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        prefix = translate("Usage: ", current_lang())
        formatter.write_usage(ctx.command_path, " ".join(self.collect_usage_pieces(ctx)), prefix)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        write_options(self, ctx, formatter)
        lang = current_lang()
        if lang != "zh":
            self.format_commands(ctx, formatter)
            return
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                summary = translate(help_key(command.help or ""), lang).split("\n")[0]
                rows.append((name, summary))
        with formatter.section(translate("Commands", lang)):
            formatter.write_dl(rows)

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        lang = current_lang()
        formatter.write_paragraph()
        with formatter.indentation():
            formatter.write_text(translate(help_key(self.help or ""), lang))

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        lang = current_lang()
        for text in (EXIT_CODES, _COMPLETION):
            formatter.write_paragraph()
            with formatter.indentation():
                formatter.write_text(translate(text, lang))


def _told(error: click.UsageError, args: list[str]) -> click.UsageError:
    """A usage error in the command's language (click words its own in English). A
    mistake may stop the parsing before `--lang` is read: then `args` say what was asked."""
    from gemini_guard.cli._click_zh import ChineseUsageError

    asked = None
    for i, arg in enumerate(args):
        if arg == "--lang" and i + 1 < len(args):
            asked = args[i + 1]
        elif arg.startswith("--lang="):
            asked = arg.split("=", 1)[1]
    lang = current_lang() if asked is None else asked.lower()
    if lang != "zh" or isinstance(error, ChineseUsageError):
        return error
    return ChineseUsageError(error)


def _set_lang(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    set_lang(ctx, value)


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta["gemini_guard.debug"] = True


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gemini-guard")
@click.option(
    "--lang",
    type=click.Choice(["en", "zh"], case_sensitive=False),
    default=None,
    is_eager=True,
    expose_value=False,
    callback=_set_lang,
    help="Language of the output: en or zh (default: from LC_ALL / LC_MESSAGES / LANG; "
    "zh for zh_*).",
)
@click.option(
    "--debug",
    is_flag=True,
    expose_value=False,
    callback=_set_debug,
    help="Show the Python traceback of an error (also GEMINI_GUARD_DEBUG=1).",
)
def main() -> None:
    """Keep applications that call the Gemini API working through its errors."""


__all__ = ["EXIT_PROBLEM", "main"]
