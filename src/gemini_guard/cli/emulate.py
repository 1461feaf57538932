"""`gemini-guard emulate`: serve the local Gemini API emulator until Ctrl-C."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from types import FrameType

import click

from gemini_guard.cli import main
from gemini_guard.cli._common import (
    GuardCommand,
    check_writable,
    effective_time_scale,
    fail,
    json_option,
    time_scale_option,
)
from gemini_guard.cli._i18n import _, current_lang
from gemini_guard.cli._scenarios import complete_scenario as _complete_scenario
from gemini_guard.clock import Clock, ScaledClock, SystemClock
from gemini_guard.errors import ScenarioError

__all__ = ["emulate_command"]


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _how_to(base_url: str) -> str:
    return (
        _("Gemini API emulator listening on {url}", url=base_url)
        + "\n\n"
        + _("Point the Python SDK (google-genai) at it:")
        + f"""
    from google import genai
    from google.genai import types
    client = genai.Client(api_key="any-key",
                          http_options=types.HttpOptions(base_url="{base_url}"))

"""
        + _("Point the JavaScript SDK (@google/genai) at it:")
        + f"""
    const ai = new GoogleGenAI({{apiKey: "any-key", httpOptions: {{baseUrl: "{base_url}"}}}});

"""
        + _("Or, for tools that read the environment:")
        + f"""
    export GOOGLE_GEMINI_BASE_URL={base_url}
    export GEMINI_API_KEY=any-key

"""
        + _("Stats: {url}/_emulator/stats    Press Ctrl-C to stop.", url=base_url)
    )


@main.command("emulate", cls=GuardCommand)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="0: any free port.",
)
@click.option(
    "--scenario",
    default="free-tier",
    shell_complete=_complete_scenario,
    show_default=True,
    help="A scenario name (see --list-scenarios) or the path of a scenario .toml file.",
)
@time_scale_option(
    1.0, "Run the emulator's clock this many times faster (60: a minute of quota per second)."
)
@click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Append one JSON line per request to this file (projects, never keys).",
)
@click.option("--list-scenarios", is_flag=True, help="List the scenarios and exit.")
@json_option
def emulate_command(
    host: str,
    port: int,
    scenario: str,
    time_scale: float,
    log_path: Path | None,
    list_scenarios: bool,
    as_json: bool,
) -> None:
    """Serve a local Gemini API with real quotas, real error bodies and scripted outages.

    It runs until Ctrl-C, which is its normal end (exit code 0)."""
    from gemini_guard.cli._scenarios import (
        check_scenario_name,
        resolve_scenario,
        scenario_names,
    )
    from gemini_guard.emulator import Emulator
    from gemini_guard.emulator.server import bind_socket, run

    if list_scenarios:
        if as_json:  # the same in every language
            rows = [{"name": n, "description": d} for n, d in scenario_names().items()]
            click.echo(json.dumps({"scenarios": rows}, ensure_ascii=False, indent=2))
        else:
            for name, description in scenario_names(current_lang()).items():
                click.echo(f"{name:14} {description}")
        return
    if as_json:
        raise click.UsageError(_("--json goes with --list-scenarios: the server prints no result"))
    time_scale = effective_time_scale(time_scale) or 1.0
    clock: Clock = ScaledClock(time_scale) if time_scale != 1.0 else SystemClock()
    if log_path is not None:
        check_writable(log_path, "--log")
    check_scenario_name(scenario, "--scenario")
    try:
        emulator = Emulator(resolve_scenario(scenario), clock=clock, log_path=log_path)
    except ScenarioError as exc:
        raise click.BadParameter(str(exc), param_hint="--scenario") from exc
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        fail(
            _(
                "cannot listen on {host}:{port}: {why}. "
                "Choose another --port (0 picks a free one).",
                host=host,
                port=port,
                why=exc.strerror or exc,
            )
        )
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    base_url = f"http://{shown}:{bound}"
    click.echo(
        _(
            "scenario: {name} - {about}",
            name=emulator.scenario.name,
            about=emulator.scenario.describe(current_lang()),
        )
        + "\n"
        + _("time scale: {x}x", x=f"{time_scale:g}")
        + (_("; request log: {path}", path=log_path) if log_path else "")
    )
    click.echo(_how_to(base_url), nl=True)
    # uvicorn re-raises the stop signal once it has shut down; SIGTERM's default action
    # would then kill the process before the request log is closed. Stopping by SIGTERM
    # (docker stop, systemd) is a normal end, like Ctrl-C.
    signal.signal(signal.SIGTERM, _stop)
    try:
        run(emulator, sock=sock, log_level="warning")
    except KeyboardInterrupt:
        # uvicorn shuts down cleanly on Ctrl-C, then re-raises it: stopping is the normal end.
        pass
    finally:
        click.echo(_("emulator stopped"))
        emulator.close()
        sock.close()
