"""Run a benchmark: `python -m bench NAME [ARGS...]`; without NAME, list them.

Each benchmark is a module `bench/NAME.py` with `main(argv: list[str]) -> None`.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench


def _names() -> list[str]:
    return sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_")
    )


def main(argv: list[str]) -> None:
    names = _names()
    if not argv or argv[0] not in names:
        print("usage: python -m bench NAME [ARGS...]\nbenchmarks: " + ", ".join(names))
        sys.exit(0 if not argv else 2)
    module = importlib.import_module(f"bench.{argv[0]}")
    module.main(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
