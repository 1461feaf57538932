"""`python -m gemini_guard` and the `gemini-guard` script: the CLI, if its extra is installed."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    from gemini_guard._extras import MissingExtra, require

    try:
        for module in ("click", "rich"):
            require(module, "cli", "the gemini-guard command")
    except MissingExtra as exc:
        sys.exit(f"gemini-guard: {exc}")
    from gemini_guard.cli import main as cli

    cli(prog_name="gemini-guard")


if __name__ == "__main__":
    main()
