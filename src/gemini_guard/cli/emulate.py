"""`gemini-guard emulate`: serve the local Gemini API emulator until Ctrl-C."""

from __future__ import annotations

from pathlib import Path

import click

from gemini_guard.cli import main
from gemini_guard.clock import Clock, ScaledClock, SystemClock
from gemini_guard.emulator import Emulator, builtin_scenarios
from gemini_guard.emulator.server import bind_socket, run
from gemini_guard.errors import ScenarioError

__all__ = ["emulate_command"]


def _how_to(base_url: str) -> str:
    return f"""\
Gemini API emulator listening on {base_url}

Point the Python SDK (google-genai) at it:
    from google import genai
    from google.genai import types
    client = genai.Client(api_key="any-key",
                          http_options=types.HttpOptions(base_url="{base_url}"))

Point the JavaScript SDK (@google/genai) at it:
    const ai = new GoogleGenAI({{apiKey: "any-key", httpOptions: {{baseUrl: "{base_url}"}}}});

Or, for tools that read the environment:
    export GOOGLE_GEMINI_BASE_URL={base_url}
    export GEMINI_API_KEY=any-key

Stats: {base_url}/_emulator/stats    Press Ctrl-C to stop."""


@main.command("emulate")
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
    show_default=True,
    help="A built-in scenario name or the path of a scenario .toml file.",
)
@click.option(
    "--time-scale",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Run the emulator's clock this many times faster (60: a minute of quota per second).",
)
@click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Append one JSON line per request to this file (projects, never keys).",
)
@click.option("--list-scenarios", is_flag=True, help="List the built-in scenarios and exit.")
def emulate_command(
    host: str,
    port: int,
    scenario: str,
    time_scale: float,
    log_path: Path | None,
    list_scenarios: bool,
) -> None:
    """Serve a local Gemini API with real quotas, real error bodies and scripted outages."""
    if list_scenarios:
        for name, description in builtin_scenarios().items():
            click.echo(f"{name:14} {description}")
        return
    clock: Clock = ScaledClock(time_scale) if time_scale != 1.0 else SystemClock()
    try:
        emulator = Emulator(scenario, clock=clock, log_path=log_path)
    except ScenarioError as exc:
        raise click.BadParameter(str(exc), param_hint="--scenario") from exc
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}."
            " Choose another --port (0 picks a free one)."
        ) from exc
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    base_url = f"http://{shown}:{bound}"
    click.echo(
        f"scenario: {emulator.scenario.name} - {emulator.scenario.description}\n"
        f"time scale: {time_scale:g}x" + (f"; request log: {log_path}" if log_path else "")
    )
    click.echo(_how_to(base_url), nl=True)
    try:
        run(emulator, sock=sock, log_level="warning")
    except KeyboardInterrupt:
        # uvicorn shuts down cleanly on Ctrl-C, then re-raises it: stopping is the normal end.
        pass
    finally:
        click.echo("emulator stopped")
        emulator.close()
        sock.close()
