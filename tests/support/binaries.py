"""Tests that need a local program (redis-server, node) skip on a developer's machine
without it, but fail in CI: CI must never pass by skipping them."""

from __future__ import annotations

import os
import shutil

import pytest


def require_binary(name: str, *, why: str) -> str:
    """The path of program `name`; skips (or, when CI=true, fails) the test without it."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = (
        f"{name} is not installed; it is needed {why}. Install it (e.g. apt-get install {name})."
    )
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"CI must run this test: {message}")
    pytest.skip(message)
