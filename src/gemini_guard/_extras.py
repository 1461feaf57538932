"""Optional dependencies: each lives behind an extra, imported only when used.

`require("redis", "redis")` returns the module, or raises `MissingExtra` whose message
is one line naming the extra to install. Call it where the optional module is first
needed (opening a redis:// store, starting the emulator's server), never at import time,
so `import gemini_guard` with only the core installed imports none of them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRA_MODULES", "MissingExtra", "require"]

# The top-level modules each extra brings; a test imports gemini_guard with only the core
# installed and checks that none of these were loaded.
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "cli": ("click", "rich"),
    # aiohttp too is in `server`, but google-genai imports it by itself wherever it is
    # installed, so its presence says nothing about what gemini_guard imported.
    "server": ("starlette", "uvicorn"),
    "redis": ("redis",),
    "prometheus": ("prometheus_client",),
    "otel": ("opentelemetry",),
}


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, module: str, extra: str, purpose: str = "") -> None:
        self.module = module
        self.extra = extra
        why = f" for {purpose}" if purpose else ""
        super().__init__(
            f"{module} is not installed{why}: pip install 'gemini-guard[{extra}]'",
            name=module,
        )


def require(module: str, extra: str, purpose: str = "") -> ModuleType:
    """Import `module`, or raise `MissingExtra` naming `extra` (e.g. `require("redis",
    "redis", "redis:// stores")`)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = exc.name or module
        # Only a missing optional package is the user's to install; a broken import inside
        # an installed package is a real error and stays one.
        if missing.partition(".")[0] != module.partition(".")[0]:
            raise
        raise MissingExtra(module, extra, purpose) from None
