"""`gemini-guard serve`: the gateway, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import FrameType

import click

from gemini_guard.cli import main
from gemini_guard.cli._common import GuardCommand, config_option, fail, load_cli_config
from gemini_guard.cli._i18n import _

__all__ = ["serve_command"]


# Set on SIGTERM until uvicorn takes the signals over (see `gateway.server.run`).
_stop_asked = threading.Event()


def _stop(signum: int, frame: FrameType | None) -> None:
    _stop_asked.set()
    raise KeyboardInterrupt


@main.command("serve", cls=GuardCommand)
@config_option("The gemini-guard.toml with [[projects]] and [[gateway.tokens]].")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="0: any free port.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Processes serving the port; they share quotas through the config's store.",
)
@click.option(
    "--grace",
    default=10,
    show_default=True,
    type=click.IntRange(0, 3600),
    help="Seconds requests in flight may take to finish after SIGTERM.",
)
@click.option(
    "--loop",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "asyncio", "uvloop"]),
    help="Event loop; auto takes uvloop when it is installed.",
)
@click.option(
    "--http",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "h11", "httptools"]),
    help="HTTP/1.1 parser; auto takes httptools when it is installed.",
)
def serve_command(
    config_path: Path | None,
    host: str,
    port: int,
    workers: int,
    grace: int,
    loop: str,
    http: str,
) -> None:
    """Serve one guarded Gemini endpoint for every language and tool.

    Clients keep their SDK and change its base URL to this server, sending a gateway
    token as their API key; the Google keys stay here. Runs until SIGTERM or Ctrl-C,
    its normal end (exit code 0)."""
    from gemini_guard.emulator.server import bind_socket
    from gemini_guard.gateway.access_log import stderr_access_log
    from gemini_guard.gateway.build import build_gateway
    from gemini_guard.gateway.server import run, uvicorn_options

    config = load_cli_config(config_path)
    if workers > 1 and config.store.startswith("memory://"):
        fail(
            _(
                "--workers {n} with store = memory://: each process would keep its own "
                "quota ledger and together they would overrun it. Set store to a "
                "sqlite:/// or redis:// URL, or use one worker.",
                n=workers,
            )
        )
    # Everything that can be wrong with the configuration is said before listening.
    # One JSON line per request on stderr (no key, token or prompt is in them); each
    # worker process writes its own (`app_from_environment`).
    gateway, guard = (
        build_gateway(config, access_log=stderr_access_log()) if workers == 1 else (None, None)
    )
    if workers > 1:
        from gemini_guard.gateway.auth import TokenTable

        if not len(TokenTable.from_section(config.gateway)):
            build_gateway(config)  # says what is missing
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
    try:
        # From here a SIGTERM is a KeyboardInterrupt wherever it lands (the lines
        # below included: a caller may stop the server as soon as it reads them), and
        # it ends here, as a stop.
        signal.signal(signal.SIGTERM, _stop)
        click.echo(_("gateway listening on {url}", url=base_url))
        click.echo(
            _(
                "Point an SDK at it with a gateway token as the API key, e.g. "
                "GOOGLE_GEMINI_BASE_URL={url} GEMINI_API_KEY=<token>",
                url=base_url,
            )
        )
        if gateway is not None and guard is not None:
            try:
                run(gateway, sock=sock, grace=grace, loop=loop, http=http, stop_asked=_stop_asked)
            finally:
                guard.close()
        elif not _stop_asked.is_set():  # a SIGTERM lost in a finalizer still counts
            import uvicorn

            if config.source and config.source != "defaults":
                os.environ["GEMINI_GUARD_CONFIG"] = config.source
            if config.telemetry.metrics and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                # Every worker writes its counters there; each /metrics merges them all.
                import tempfile

                os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(
                    prefix="gemini-guard-metrics-"
                )
            uvicorn.run(
                "gemini_guard.gateway.build:app_from_environment",
                factory=True,
                fd=sock.fileno(),
                workers=workers,
                **uvicorn_options(grace=grace, loop=loop, http=http),
            )
    except KeyboardInterrupt:
        pass
    finally:
        click.echo(_("gateway stopped"))
        sock.close()
