"""Which asyncio HTTP client should carry a gateway's upstream requests?

    python -m bench upstream_clients [--requests N] [--concurrency 1,32,200] [--loop uvloop]

Each client sends the same POST (a 600-byte JSON body, as a short generateContent) to
a minimal keep-alive HTTP/1.1 server in its own process, which answers a fixed 1 KB
JSON at once: what is measured is the client's own cost, not the server's. For each
client and concurrency (the plain clients, and the guarded path's two httpx transports
called as the gateway calls them): requests per second, p50/p99 latency and the client
process's CPU per request, side by side in one run (the machine is shared; compare
within a run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import statistics
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx

from gemini_guard.call.aiohttp_transport import AiohttpTransport
from gemini_guard.call.transport import read_body
from gemini_guard.call.wire_transport import WireTransport

_BODY = json.dumps({"contents": [{"role": "user", "parts": [{"text": "x" * 520}]}]}).encode()
_ANSWER = json.dumps(
    {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": "y" * 800}]}, "finishReason": "STOP"}
        ],
        # What a real answer reports; LiteLLM's proxy refuses an answer without it.
        "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 200},
        "modelVersion": "gemini-2.5-flash",
    }
).encode()
_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(_ANSWER)).encode()
    + b"\r\n\r\n"
    + _ANSWER
)


class _Upstream(asyncio.Protocol):
    """Answers every request on a keep-alive connection with the fixed response."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._buffer = b""

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            head, sep, rest = self._buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) < length:
                return
            self._buffer = rest[length:]
            self._transport.write(_RESPONSE)


def _serve(sock: socket.socket) -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Upstream, sock=sock)
        async with server:
            await server.serve_forever()

    asyncio.run(run())


Send = Callable[[], Awaitable[None]]


async def _measure(send: Send, *, requests: int, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            start = time.perf_counter()
            await send()
            latencies.append(time.perf_counter() - start)

    for _ in range(min(concurrency, 20)):  # warm the pool
        await send()
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    latencies.sort()
    return {
        "rps": requests / wall,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "cpu_us": cpu / requests * 1e6,
    }


async def _run(
    url: str, requests: int, levels: list[int]
) -> list[tuple[str, int, dict[str, float]]]:
    rows: list[tuple[str, int, dict[str, float]]] = []
    headers = {"content-type": "application/json"}
    for level in levels:
        async with httpx.AsyncClient() as client:

            async def httpx_default() -> None:
                (await client.post(url, content=_BODY, headers=headers)).read()

            rows.append(
                (
                    "httpx (default pool)",
                    level,
                    await _measure(httpx_default, requests=requests, concurrency=level),
                )
            )
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=1000)
        async with httpx.AsyncClient(limits=limits) as tuned:

            async def httpx_tuned() -> None:
                (await tuned.post(url, content=_BODY, headers=headers)).read()

            rows.append(
                (
                    "httpx (unbounded pool)",
                    level,
                    await _measure(httpx_tuned, requests=requests, concurrency=level),
                )
            )
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def aiohttp_send() -> None:
                async with session.post(url, data=_BODY, headers=headers) as response:
                    await response.read()

            rows.append(
                (
                    "aiohttp",
                    level,
                    await _measure(aiohttp_send, requests=requests, concurrency=level),
                )
            )
        # The two httpx transports the guarded path can send through, called as the
        # gateway calls them (no httpx client around them) and read as it reads.
        for name, transport in (
            ("AiohttpTransport", AiohttpTransport()),
            ("WireTransport", WireTransport()),
        ):

            async def through(transport: httpx.AsyncBaseTransport = transport) -> None:
                request = httpx.Request(
                    "POST", url, headers=headers, stream=httpx.ByteStream(_BODY)
                )
                response = await transport.handle_async_request(request)
                await read_body(response)
                await response.aclose()

            try:
                rows.append(
                    (name, level, await _measure(through, requests=requests, concurrency=level))
                )
            finally:
                await transport.aclose()
    return rows


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench upstream_clients")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", default="1,32,200")
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="the clients' event loop (the gateway serves on uvloop when installed)",
    )
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.concurrency.split(",")]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    server = multiprocessing.get_context("fork").Process(target=_serve, args=(sock,), daemon=True)
    server.start()
    try:
        run = _run(
            f"http://127.0.0.1:{port}/v1beta/models/m:generateContent", args.requests, levels
        )
        if args.loop == "uvloop":
            import uvloop

            rows = uvloop.run(run)
        else:
            rows = asyncio.run(run)
    finally:
        server.terminate()
        server.join()
    print(f"{'client':<24}{'conc':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU µs/req':>12}")
    for name, level, r in rows:
        print(
            f"{name:<24}{level:>6}{r['rps']:>10.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['cpu_us']:>12.0f}"
        )
