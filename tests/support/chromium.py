"""Open a local HTML file in headless Chromium over the DevTools protocol, and report
what a user's browser would have done: requests it tried, console errors, uncaught
exceptions; evaluate expressions in the page and take a screenshot.

The DevTools protocol attributes each request to the page that made it, so
Chromium's own background traffic (update checks and the like) never counts
against the page.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

from gemini_guard.clock import SystemClock

__all__ = ["PageVisit", "visit"]


@dataclass
class PageVisit:
    requests: list[str] = field(default_factory=list)  # URLs other than file: and data:
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)  # expression -> its value


def _devtools_port(profile: Path, process: subprocess.Popen[bytes]) -> tuple[int, str]:
    clock = SystemClock()
    deadline = clock.monotonic() + 30
    marker = profile / "DevToolsActivePort"
    while clock.monotonic() < deadline:
        if marker.exists():
            lines = marker.read_text().split()
            if len(lines) >= 2:
                return int(lines[0]), lines[1]
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with {process.returncode}")
        clock.sleep(0.05)
    raise RuntimeError("chromium did not open its DevTools port within 30 s")


def visit(
    chromium: str,
    page: Path,
    *,
    evaluate: tuple[str, ...] = (),
    screenshot: Path | None = None,
    width: int = 1100,
    height: int = 900,
) -> PageVisit:
    """Load `page` (a local file) and watch it until its load event and a settle."""
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-"))
    process = subprocess.Popen(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            f"--window-size={width},{height}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port, path = _devtools_port(profile, process)
        with connect(f"ws://127.0.0.1:{port}{path}", max_size=64 * 1024 * 1024) as ws:
            return _drive(ws, page, evaluate, screenshot, width)
    finally:
        process.terminate()
        process.wait(30)
        shutil.rmtree(profile, ignore_errors=True)


def _drive(
    ws: Any, page: Path, evaluate: tuple[str, ...], screenshot: Path | None, width: int
) -> PageVisit:
    ids = itertools.count(1)
    result = PageVisit()
    session: str | None = None

    def note(message: dict[str, Any]) -> None:
        method = message.get("method")
        params = message.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not url.startswith(("file:", "data:", "about:")):
                result.requests.append(url)
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            result.console_errors.append(
                " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            )
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            result.exceptions.append(
                str(details.get("exception", {}).get("description") or details.get("text"))
            )
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            result.console_errors.append(str(params["entry"].get("text")))

    def call(method: str, params: dict[str, Any] | None = None, *, until: str = "") -> Any:
        """Send a command; its result, once it and (with `until`) that event came."""
        n = next(ids)
        message: dict[str, Any] = {"id": n, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        ws.send(json.dumps(message))
        answer: Any = None
        seen = not until
        while answer is None or not seen:
            incoming = json.loads(ws.recv(timeout=60))
            note(incoming)
            if incoming.get("id") == n:
                if "error" in incoming:
                    raise RuntimeError(f"{method}: {incoming['error']}")
                answer = incoming.get("result", {})
            elif until and incoming.get("method") == until:
                seen = True
        return answer

    target = call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Network", "Runtime", "Log", "Page"):
        call(f"{domain}.enable")
    call("Page.navigate", {"url": page.resolve().as_uri()}, until="Page.loadEventFired")
    for expression in evaluate:
        value = call("Runtime.evaluate", {"expression": expression, "returnByValue": True})[
            "result"
        ]
        result.values[expression] = value.get("value")
    if screenshot is not None:
        metrics = call("Page.getLayoutMetrics")
        full = metrics.get("cssContentSize") or metrics["contentSize"]
        shot = call(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": full["height"], "scale": 1},
            },
        )
        screenshot.write_bytes(base64.b64decode(shot["data"]))
    return result
