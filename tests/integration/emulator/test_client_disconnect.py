"""Client input and client behaviour on a real socket: never a traceback (issue 18)."""

from __future__ import annotations

import logging
import socket

import httpx
import pytest

from gemini_guard.clock import FakeClock
from gemini_guard.emulator import serve


def test_a_client_gone_mid_request_is_one_log_line_on_a_real_socket(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with serve("healthy", clock=FakeClock()) as server:
        with socket.create_connection((server.host, server.port)) as sock:
            sock.sendall(
                b"POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\n"
                b"Host: emulator\r\nx-goog-api-key: k\r\ncontent-type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n{"contents": ['
            )
        # Each stats call is a round trip through the server's loop; the disconnect is
        # handled within a few of them.
        for _ in range(500):
            stats = httpx.get(server.base_url + "/_emulator/stats").json()
            if stats["totals"]["rejected"].get("client_disconnected"):
                break
        assert stats["totals"]["rejected"].get("client_disconnected") == 1
    assert not [r for r in caplog.records if r.exc_info is not None]
    assert "Exception in ASGI application" not in caplog.text
    lines = [r for r in caplog.records if r.name == "gemini_guard.emulator"]
    assert len(lines) == 1
    assert "disconnected" in lines[0].getMessage()
