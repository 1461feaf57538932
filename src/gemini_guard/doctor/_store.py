"""The configured state store: memory://, a writable SQLite file, or a Redis that answers."""

from __future__ import annotations

import os
import sqlite3

from gemini_guard.doctor._base import CheckResult, Text, _result, _short
from gemini_guard.errors import ConfigError
from gemini_guard.stores.url import EXAMPLES, StoreUrl, parse_store_url

TITLE_STORE = Text("Store", "状态存储")


def check_store(url: str | None, *, timeout: float) -> CheckResult:
    """The configured state store answers: memory://, sqlite:///path (writable), redis://.

    The URL is read by `parse_store_url`, as the Guard reads it: a bad option fails
    here with the message the Guard would raise.
    """
    if url is None:
        return _result(
            "store",
            "skip",
            TITLE_STORE,
            "none configured: state lives in memory, per process",
            "未配置：状态保存在各进程的内存中",
        )
    try:
        parsed = parse_store_url(url)
    except ConfigError as exc:
        return _result(
            "store",
            "fail",
            TITLE_STORE,
            str(exc),
            f"存储地址无效：{exc}",
            Text(
                f"use one of {EXAMPLES}, with the options named above",
                f"请使用 {EXAMPLES} 之一，并按上文修正选项",
            ),
        )
    if parsed.kind == "memory":
        return _result(
            "store",
            "ok",
            TITLE_STORE,
            "memory:// (one process; not shared)",
            "memory://（单进程，不共享）",
        )
    if parsed.kind == "sqlite":
        return _check_sqlite(parsed, timeout)
    return _check_redis(parsed, timeout)


def _check_sqlite(url: StoreUrl, timeout: float) -> CheckResult:
    shown = url.shown
    assert url.path is not None  # parse_store_url gives every sqlite URL its file
    path = url.path
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


def _check_redis(url: StoreUrl, timeout: float) -> CheckResult:
    shown = url.shown
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
    # The doctor's own timeout, not the store's 50 ms: it asks once and may wait.
    client = redis.Redis.from_url(
        url.client_url, socket_timeout=timeout, socket_connect_timeout=timeout
    )
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
