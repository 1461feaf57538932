"""The library imports none of its extras; a missing extra is named in one line."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from gemini_guard._extras import EXTRA_MODULES, MissingExtra, require


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_library_imports_no_extra() -> None:
    done = _python(
        """
        import sys
        # httpx loads click and rich for its own `httpx` command when they are installed
        # (here they are: the dev install has every extra); count only what we load.
        import httpx
        before = set(sys.modules)
        import gemini_guard
        from gemini_guard._extras import EXTRA_MODULES
        # the library's entry points, as an app uses them
        gemini_guard.Guard, gemini_guard.QuotaLimiter, gemini_guard.load_config
        gemini_guard.diagnose(429)
        optional = {m for mods in EXTRA_MODULES.values() for m in mods}
        print(sorted({n.partition(".")[0] for n in set(sys.modules) - before} & optional))
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_every_extra_in_the_table_is_declared() -> None:
    from importlib.metadata import metadata

    declared = set(metadata("gemini-guard").get_all("Provides-Extra") or [])
    assert {"cli", "server", "redis", "all", "dev"} <= declared
    assert {"cli", "server", "redis"} <= set(EXTRA_MODULES)


def test_require_names_the_extra() -> None:
    with pytest.raises(MissingExtra) as caught:
        require("gemini_guard_no_such_module", "server", "the emulator")
    assert str(caught.value) == (
        "gemini_guard_no_such_module is not installed for the emulator: "
        "pip install 'gemini-guard[server]'"
    )
    assert require("json", "cli").__name__ == "json"


@pytest.mark.parametrize(
    ("blocked", "args", "extra"),
    [
        ("click", ["--help"], "gemini-guard[cli]"),
        ("starlette", ["emulate", "--list-scenarios"], "gemini-guard[server]"),
        ("uvicorn", ["emulate", "--port", "0"], "gemini-guard[server]"),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(blocked: str, args: list[str], extra: str) -> None:
    done = _python(
        f"""
        import sys
        sys.modules[{blocked!r}] = None  # as if the extra were not installed
        sys.argv = ["gemini-guard", *{args!r}]
        from gemini_guard.__main__ import main
        main()
        """
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert extra in lines[0]
