"""What every `gemini-guard` command shares: exit codes, options, and ordinary mistakes.

The convention, the same for every command and printed at the end of each `--help`:

    0    success
    1    the command ran and found a problem (a failed check, a lost request,
         an error it could not diagnose, a file it could not write)
    2    usage error (click's own: a bad option or argument)
    130  interrupted (Ctrl-C)

A mistake with files or configuration ends in one line on stderr, what went wrong,
where, and how to fix it, with exit code 1 (2 when click's own checks catch it while
parsing); the traceback is shown only with `--debug` or GEMINI_GUARD_DEBUG=1.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from gemini_guard.cli._i18n import _, current_lang, help_key, set_lang, translate

if TYPE_CHECKING:
    from gemini_guard.config import GuardConfig

__all__ = [
    "DEFAULT_STATE_STORE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PROBLEM",
    "EXIT_USAGE",
    "TIERS",
    "GuardCommand",
    "check_writable",
    "fail",
    "json_option",
    "load_cli_config",
    "models_option",
    "split_models",
    "time_scale_option",
]

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_CODES = (
    "Exit codes: 0 success; 1 the command ran and found a problem; 2 usage error; 130 interrupted."
)
TIERS = ("auto", "free", "tier1", "tier2", "tier3")
# The one place the CLI keeps shared state when nothing else is configured.
DEFAULT_STATE_STORE = "sqlite:///~/.cache/gemini-guard/state.db"
_DEBUG_KEY = "gemini_guard.debug"

F = TypeVar("F", bound=Callable[..., Any])


class Failure(click.ClickException):
    """A problem found while running, told in one line; exit code 1."""

    exit_code = EXIT_PROBLEM

    def __init__(self, message: str) -> None:
        super().__init__(message)
        # click shows the error after the command's context is gone: take the word now.
        self.label = _("error")

    def show(self, file: Any = None) -> None:
        click.echo(f"gemini-guard: {self.label}: {self.format_message()}", err=True)


def fail(message: str) -> NoReturn:
    raise Failure(message)


def debug_enabled() -> bool:
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.meta.get(_DEBUG_KEY):
        return True
    return os.environ.get("GEMINI_GUARD_DEBUG", "") not in ("", "0")


def _set_lang(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    set_lang(ctx, value)
    return value


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[_DEBUG_KEY] = True
    return value


class GuardCommand(click.Command):
    """A command with `--lang` and `--debug`, the exit codes in its help, and help text
    in the chosen language."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("epilog", EXIT_CODES)
        super().__init__(*args, **kwargs)
        self.params.append(
            click.Option(
                ["--lang"],
                type=click.Choice(["en", "zh"], case_sensitive=False),
                default=None,
                is_eager=True,
                expose_value=False,
                callback=_set_lang,
                help="Language of the output: en or zh (default: from LC_ALL / LC_MESSAGES / "
                "LANG; zh for zh_*).",
            )
        )
        self.params.append(
            click.Option(
                ["--debug"],
                is_flag=True,
                expose_value=False,
                callback=_set_debug,
                help="Show the Python traceback of an error (also GEMINI_GUARD_DEBUG=1).",
            )
        )

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        pieces = self.collect_usage_pieces(ctx)
        prefix = translate("Usage: ", current_lang())
        formatter.write_usage(ctx.command_path, " ".join(pieces), prefix)

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        lang = current_lang()
        if self.help and lang == "zh":
            original = self.help
            self.help = translate(help_key(original), lang)
            try:
                super().format_help_text(ctx, formatter)
            finally:
                self.help = original
        else:
            super().format_help_text(ctx, formatter)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        write_options(self, ctx, formatter)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if self.epilog:
            formatter.write_paragraph()
            with formatter.indentation():
                formatter.write_text(translate(self.epilog, current_lang()))


def write_options(
    command: click.Command, ctx: click.Context, formatter: click.HelpFormatter
) -> None:
    """The Options section, each help text in the command's language."""
    lang = current_lang()
    rows = []
    for param in command.get_params(ctx):
        if not isinstance(param, click.Option):
            continue
        record = param.get_help_record(ctx)
        if record is None:
            continue
        names, text = record
        if lang == "zh":
            text = _translate_option_help(param, text)
        rows.append((names, text))
    if rows:
        with formatter.section(translate("Options", lang)):
            formatter.write_dl(rows)


def _translate_option_help(param: click.Parameter, text: str) -> str:
    own = getattr(param, "help", None)
    if own:
        text = text.replace(own, translate(own, "zh"))
    text = text.replace("[required]", translate("[required]", "zh"))
    head, sep, tail = text.rpartition("[default: ")
    if sep:
        text = head + translate("[default: {value}]", "zh").format(value=tail.rstrip("]"))
    return text


def json_option(f: F) -> F:
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print the result as JSON (one stable schema; see docs/cli.md).",
    )(f)


def split_models(values: tuple[str, ...] | str | None) -> tuple[str, ...]:
    """`--model a --model b,c` → (a, b, c), duplicates dropped in order."""
    if values is None:
        return ()
    if isinstance(values, str):
        values = (values,)
    names = (name.strip() for value in values for name in value.split(","))
    return tuple(dict.fromkeys(name for name in names if name))


def models_option(help_text: str) -> Callable[[F], F]:
    return click.option("--model", "models", multiple=True, metavar="MODEL", help=help_text)


def _speed_alias(ctx: click.Context, _param: click.Parameter, value: float | None) -> None:
    if value is not None:
        click.echo(
            "gemini-guard: " + _("--speed is deprecated; use --time-scale (same meaning)"),
            err=True,
        )
        ctx.meta["gemini_guard.speed"] = value


def time_scale_option(default: float | None, help_text: str) -> Callable[[F], F]:
    """`--time-scale X`, with the old `--speed` kept as a hidden, deprecated alias."""

    def decorate(f: F) -> F:
        f = click.option(
            "--time-scale",
            type=click.FloatRange(min=0, min_open=True),
            default=default,
            show_default=default is not None,
            help=help_text,
        )(f)
        return click.option(
            "--speed",
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            hidden=True,
            expose_value=False,
            callback=_speed_alias,
        )(f)

    return decorate


def effective_time_scale(value: float | None) -> float | None:
    """The --time-scale given, or the deprecated --speed when only that was."""
    ctx = click.get_current_context(silent=True)
    speed = None if ctx is None else ctx.meta.get("gemini_guard.speed")
    return speed if speed is not None else value


def config_option(help_text: str) -> Callable[[F], F]:
    """`--config PATH`: click checks it is an existing file; `load_cli_config` reads it."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        metavar="PATH",
        help=help_text,
    )


def _reason(exc: OSError) -> tuple[str, str]:
    code = exc.errno
    if code == errno.ENOENT:
        return _("the directory does not exist"), _("Create the directory or choose another path.")
    if code == errno.EISDIR:
        return _("it is a directory, not a file"), _("Give the path of a file.")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return _("permission denied"), _("Check the file's permissions or choose another path.")
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return _("the disk is full"), _("Free some space or choose another disk.")
    return (exc.strerror or str(exc)), _("Check the path.")


def os_error_line(exc: OSError, what: str | None = None, fix: str | None = None) -> str:
    reason, usual_fix = _reason(exc)
    fix = fix or usual_fix
    path = exc.filename if exc.filename is not None else "?"
    return _(
        "{what}: {path}: {reason}. {fix}",
        what=what or _("cannot open"),
        path=path,
        reason=reason,
        fix=fix,
    )


def check_writable(path: Path, what: str, fix: str | None = None) -> None:
    """Fail in one line, before any work, when `path` cannot be created or appended to."""
    target = path.expanduser()
    parent = target.parent if str(target.parent) else Path(".")
    problem: OSError | None = None
    if target.is_dir():
        problem = IsADirectoryError(errno.EISDIR, "", str(path))
    elif not parent.is_dir():
        problem = FileNotFoundError(errno.ENOENT, "", str(parent))
    elif target.exists() and not os.access(target, os.W_OK):
        problem = PermissionError(errno.EACCES, "", str(path))
    elif not target.exists() and not os.access(parent, os.W_OK):
        problem = PermissionError(errno.EACCES, "", str(parent))
    if problem is not None:
        fail(f"{what}: " + os_error_line(problem, _("cannot write"), fix))


def load_cli_config(path: Path | str | None) -> GuardConfig:
    """The configuration, or one line saying what is wrong with it (exit 2 for --config)."""
    from gemini_guard.config import load_config
    from gemini_guard.errors import ConfigError

    try:
        config = load_config(path)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--config") from None
    except UnicodeDecodeError:
        raise click.BadParameter(
            f"{path}: {_('it is not a text file (UTF-8 TOML expected)')}. "
            + _("Give the gemini-guard.toml file."),
            param_hint="--config",
        ) from None
    except OSError as exc:
        raise click.BadParameter(os_error_line(exc, _("cannot read")), param_hint="--config") from (
            None
        )
    if config.telemetry.jsonl:
        check_writable(
            Path(config.telemetry.jsonl),
            _("the [telemetry] jsonl file"),
            _("Fix [telemetry] jsonl in the configuration, or its permissions."),
        )
    return config
