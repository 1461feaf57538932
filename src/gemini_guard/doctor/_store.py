"""The configured state store: memory://, a writable SQLite file, or a Redis that answers."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from gemini_guard.doctor._base import CheckResult, Text, _result, _safe_url, _short

TITLE_STORE = Text("Store", "状态存储")


def check_store(url: str | None, *, timeout: float) -> CheckResult:
    """The configured state store answers: memory://, sqlite:///path (writable), redis://."""
    if url is None:
        return _result(
            "store",
            "skip",
            TITLE_STORE,
            "none configured: state lives in memory, per process",
            "未配置：状态保存在各进程的内存中",
        )
    shown = _safe_url(url) if "://" in url else url
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "memory":
        return _result(
            "store",
            "ok",
            TITLE_STORE,
            "memory:// (one process; not shared)",
            "memory://（单进程，不共享）",
        )
    if scheme == "sqlite":
        return _check_sqlite(url, shown, timeout)
    if scheme in ("redis", "rediss"):
        return _check_redis(url, shown, timeout)
    return _result(
        "store",
        "fail",
        TITLE_STORE,
        f"unknown store URL {shown!r}",
        f"无法识别的存储地址 {shown!r}",
        Text(
            "use memory://, sqlite:///path/to/state.db or redis://host:6379/0",
            "请使用 memory://、sqlite:///path/to/state.db 或 redis://host:6379/0",
        ),
    )


def _check_sqlite(url: str, shown: str, timeout: float) -> CheckResult:
    # The quota store's convention: sqlite:///relative, sqlite:////absolute, ~ expanded.
    raw = url.split("://", 1)[1].partition("?")[0]
    if not raw.startswith("/") or raw in {"/", "/:memory:"} or raw.endswith("/"):
        return _result(
            "store",
            "fail",
            TITLE_STORE,
            f"{shown} names no database file",
            f"{shown} 没有指定数据库文件",
            Text(
                "use sqlite:///relative/path.db or sqlite:////absolute/path.db",
                "请使用 sqlite:///relative/path.db 或 sqlite:////absolute/path.db",
            ),
        )
    path = Path(os.path.expanduser(raw[1:]))
    fix = Text(
        f"create the directory {path.parent} and make it writable by this user",
        f"创建目录 {path.parent} 并确保当前用户可写",
    )
    if not path.exists():
        if path.parent.is_dir() and os.access(path.parent, os.W_OK):
            return _result(
                "store",
                "ok",
                TITLE_STORE,
                f"{shown}: will be created (directory writable)",
                f"{shown}：将自动创建（目录可写）",
            )
        return _result(
            "store",
            "fail",
            TITLE_STORE,
            f"{shown}: directory {path.parent} is missing or not writable",
            f"{shown}：目录 {path.parent} 不存在或不可写",
            fix,
        )
    try:
        connection = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")  # takes the write lock, changes nothing
            connection.execute("ROLLBACK")
        finally:
            connection.close()
    except sqlite3.Error as exc:
        return _result(
            "store",
            "fail",
            TITLE_STORE,
            f"{shown}: cannot write: {exc}",
            f"{shown}：无法写入：{exc}",
            fix,
        )
    return _result("store", "ok", TITLE_STORE, f"{shown}: writable", f"{shown}：可写")


def _check_redis(url: str, shown: str, timeout: float) -> CheckResult:
    try:
        import redis
    except ImportError:
        return _result(
            "store",
            "fail",
            TITLE_STORE,
            f"{shown}: the redis package is not installed",
            f"{shown}：未安装 redis 包",
            Text('pip install "gemini-guard[redis]"', 'pip install "gemini-guard[redis]"'),
        )
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        client.ping()
    except redis.RedisError as exc:
        return _result(
            "store",
            "fail",
            TITLE_STORE,
            f"{shown}: PING failed: {_short(str(exc))}",
            f"{shown}：PING 失败：{_short(str(exc))}",
            Text(
                "start redis-server or fix host, port and password in the URL",
                "启动 redis-server，或修正地址中的主机、端口和密码",
            ),
        )
    finally:
        client.close()
    return _result("store", "ok", TITLE_STORE, f"{shown}: PING ok", f"{shown}：PING 正常")
