"""The path to the service: DNS, TCP, TLS and HTTP to the endpoint, and the status page.

Every network step has a short timeout; time is read only through the injected Clock.
"""

from __future__ import annotations

import os
import socket
import ssl
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from gemini_guard.doctor._base import (
    DEFAULT_BASE_URL,
    CheckResult,
    Text,
    _ms,
    _result,
    _safe_url,
    _short,
    _with_timeout,
)

if TYPE_CHECKING:
    from gemini_guard.clock import Clock


TITLE_ENDPOINT = Text("Endpoint", "接口地址")
_VERTEX_URL_FIX = Text(
    "check the base URL: Vertex AI is https://LOCATION-aiplatform.googleapis.com, or "
    "https://aiplatform.googleapis.com for the global location (no path)",
    "检查基础地址：Vertex AI 为 https://LOCATION-aiplatform.googleapis.com，"
    "global 位置为 https://aiplatform.googleapis.com（不带路径）",
)


def check_endpoint(
    base_url: str, *, timeout: float, clock: Clock, vertex: bool = False
) -> CheckResult:
    """DNS, TCP, TLS (for https) and HTTP to `base_url`; the first layer that fails is named.

    `vertex`: the base URL is a Vertex AI endpoint, which answers an unauthenticated
    request at its root with an error of its own: any HTTP answer below 500 proves the path.
    """
    env_var = "GOOGLE_VERTEX_BASE_URL" if vertex else "GOOGLE_GEMINI_BASE_URL"
    shown = _safe_url(base_url)
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return _result(
            "endpoint",
            "fail",
            TITLE_ENDPOINT,
            f"{shown!r} is not an http(s) URL",
            f"{shown!r} 不是 http(s) 地址",
            Text(f"use a URL like {DEFAULT_BASE_URL}", f"请使用类似 {DEFAULT_BASE_URL} 的地址"),
        )
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    steps: list[str] = []

    def failed(layer: str, error: object, fix: Text) -> CheckResult:
        done = "; ".join(steps)
        prefix = f"{done}; " if done else ""
        return _result(
            "endpoint",
            "fail",
            TITLE_ENDPOINT,
            f"{prefix}{layer} failed for {shown}: {_short(str(error))}",
            f"{prefix}{shown} 的 {layer} 失败：{_short(str(error))}",
            fix,
        )

    start = clock.monotonic()
    try:
        infos = _with_timeout(
            lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout
        )
    except OSError as exc:  # socket.gaierror, or our TimeoutError
        return failed(
            "DNS",
            str(exc) or f"no answer within {timeout:g} s",
            Text(
                f"check the host name and your DNS; offline machines cannot resolve {host} "
                f"(point --base-url or {env_var} at a reachable gateway)",
                f"检查主机名和 DNS；离线机器无法解析 {host}"
                f"（可用 --base-url 或 {env_var} 指向可达的网关）",
            ),
        )
    family, _, _, _, address = infos[0]
    steps.append(f"DNS {host} → {address[0]}")
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(address)
    except OSError as exc:
        sock.close()
        return failed(
            "TCP",
            exc,
            Text(
                f"nothing accepts connections on {address[0]}:{port}: check firewalls and "
                "proxies (HTTPS_PROXY), or start the gateway/emulator this URL points to",
                f"{address[0]}:{port} 无法连接：检查防火墙和代理（HTTPS_PROXY），"
                "或启动该地址对应的网关/模拟器",
            ),
        )
    steps.append(f"TCP :{port} {_ms(clock.monotonic() - start)}")
    try:
        if parts.scheme == "https":
            context = ssl.create_default_context()
            with context.wrap_socket(sock, server_hostname=host) as tls:
                steps.append(f"TLS {tls.version()}")
        else:
            sock.close()
    except (OSError, ssl.SSLError) as exc:
        sock.close()
        return failed(
            "TLS",
            exc,
            Text(
                "a proxy or antivirus may be intercepting TLS: add its CA certificate to "
                "SSL_CERT_FILE, or check the machine's date and time",
                "代理或杀毒软件可能在拦截 TLS：把它的 CA 证书加入 SSL_CERT_FILE，或检查系统时间",
            ),
        )
    # Asked without a key, a Gemini API answers this path 400/401/403 (or 200); a 404 means
    # the URL reaches a web server that is not one (a wrong path or port).
    path = "/" if vertex else "/v1beta/models"
    probe = base_url.rstrip("/") + path
    try:
        response = httpx.get(probe, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        return failed(
            "HTTP",
            exc,
            Text(
                "the server accepts connections but does not answer HTTP: check the URL's "
                "scheme and port",
                "服务器接受连接但不响应 HTTP：检查地址的协议和端口",
            ),
        )
    steps.append(f"HTTP {response.status_code} for {path}")
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    via = f" (HTTPS_PROXY is set: {_safe_url(proxy)})" if proxy else ""
    if (response.status_code == 404 and not vertex) or response.status_code >= 500:
        return _result(
            "endpoint",
            "warn" if response.status_code >= 500 else "fail",
            TITLE_ENDPOINT,
            f"{shown}: " + "; ".join(steps) + via + ": the server answers, but not as the "
            "Gemini API does",
            f"{shown}：" + "; ".join(steps) + via + "：服务器有响应，但不像 Gemini API",
            _VERTEX_URL_FIX
            if vertex
            else Text(
                f"check the base URL: the Gemini API is {DEFAULT_BASE_URL} (no path); a "
                "gateway or the emulator is its root URL, e.g. http://127.0.0.1:8080",
                f"检查基础地址：Gemini API 为 {DEFAULT_BASE_URL}（不带路径）；网关或模拟器"
                "用其根地址，例如 http://127.0.0.1:8080",
            ),
        )
    return _result(
        "endpoint",
        "ok",
        TITLE_ENDPOINT,
        f"{shown}: " + "; ".join(steps) + via,
        f"{shown}：" + "; ".join(steps) + via,
    )


# --- status page ---------------------------------------------------------------------------

TITLE_STATUS = Text("Status page", "状态页")


def check_status_page(url: str, *, timeout: float) -> CheckResult:
    """Reachability of the service status page; unreachable is a warning (offline machines)."""
    shown = _safe_url(url)
    look = Text(
        f"open {shown} in a browser for current incidents", f"在浏览器打开 {shown} 查看当前故障"
    )
    try:
        response = httpx.get(url, timeout=timeout, follow_redirects=True)
    except httpx.HTTPError as exc:
        return _result(
            "status_page",
            "warn",
            TITLE_STATUS,
            f"could not reach {shown} ({type(exc).__name__}); this machine may be offline",
            f"无法访问 {shown}（{type(exc).__name__}）；本机可能处于离线状态",
            look,
        )
    if response.status_code >= 400:
        return _result(
            "status_page",
            "warn",
            TITLE_STATUS,
            f"{shown} answered HTTP {response.status_code}",
            f"{shown} 返回 HTTP {response.status_code}",
            look,
        )
    return _result(
        "status_page",
        "ok",
        TITLE_STATUS,
        f"{shown} reachable (HTTP {response.status_code}); check it for incidents",
        f"{shown} 可访问（HTTP {response.status_code}）；可在此查看故障信息",
    )
