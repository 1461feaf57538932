"""The local setup: the API key google-genai would use, and the SDK's version."""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from gemini_guard.doctor._base import CheckResult, Text, _result

# gemini-guard depends on google-genai >= 3.0 and is tested against 3.6.1: 3.x is the
# line whose default API version is v1, whose errors.APIError carries the parsed body
# (`details`) that diagnose() reads, and whose HttpOptions(base_url=...) the emulator
# and the gateway rely on. Older releases are not tested and are not safe to assume.
OLDEST_KNOWN_GOOD_SDK = "3.0.0"
TESTED_SDK = "3.6.1"
KEY_ENV_VARS = ("GOOGLE_API_KEY", "GEMINI_API_KEY")  # in google-genai's order of precedence
_KEY_FORMAT = re.compile(r"AIza[0-9A-Za-z_\-]{35}")


# --- API key -------------------------------------------------------------------------------

TITLE_KEY = Text("API key", "API 密钥")


@dataclass(frozen=True, slots=True)
class KeyChoice:
    """The key google-genai would use, where it comes from, and whether another was ignored."""

    key: str | None = field(repr=False)
    source: str | None  # the environment variable it came from
    shadowed: str | None = None  # the variable set to a different key, and ignored
    wanted: str | None = None  # the one variable a configuration names, if any


def find_api_key(env: Mapping[str, str], *, key_env: str | None = None) -> KeyChoice:
    """The key google-genai 3.6.1 picks: GOOGLE_API_KEY first, then GEMINI_API_KEY.

    Its `_api_client.get_env_api_key` returns `GOOGLE_API_KEY or GEMINI_API_KEY` and
    logs a warning when both are set; an empty value counts as unset. With `key_env`
    (a configuration's `api_key_env`), that variable alone is read, as the Guard does.
    """
    if key_env is not None:
        value = env.get(key_env) or None
        return KeyChoice(value, key_env if value else None, wanted=key_env)
    values = {name: env.get(name) or None for name in KEY_ENV_VARS}
    source = next((name for name in KEY_ENV_VARS if values[name]), None)
    if source is None:
        return KeyChoice(None, None)
    key = values[source]
    shadowed = next(
        (n for n in KEY_ENV_VARS if n != source and values[n] and values[n] != key), None
    )
    return KeyChoice(key, source, shadowed)


def redact_key(key: str) -> str:
    """`AIza…XyZ1`: enough to tell two keys apart, never enough to use one."""
    if len(key) < 12:
        return f"…({len(key)} characters)"
    return f"{key[:4]}…{key[-4:]}"


def _with_length(key: str, shown: str, *, zh: bool = False) -> str:
    """The redacted key and its length, once (a short key's redaction is its length)."""
    if "characters)" in shown:
        return shown
    return f"{shown}，{len(key)} 个字符" if zh else f"{shown}, {len(key)} characters"


def check_api_key(choice: KeyChoice) -> CheckResult:
    if choice.key is None or choice.source is None:
        variable = choice.wanted or "GEMINI_API_KEY"
        missing = (
            Text(
                f"no API key: {variable} (the configuration's api_key_env) is not set",
                f"没有 API 密钥：{variable}（配置中的 api_key_env）未设置",
            )
            if choice.wanted
            else Text(
                "no API key: neither GEMINI_API_KEY nor GOOGLE_API_KEY is set",
                "没有 API 密钥：GEMINI_API_KEY 和 GOOGLE_API_KEY 都未设置",
            )
        )
        return CheckResult(
            "api_key",
            "fail",
            TITLE_KEY,
            missing,
            Text(
                "create a key at https://aistudio.google.com/apikey, then "
                f"`export {variable}=...` in the shell that runs your program",
                "在 https://aistudio.google.com/apikey 创建密钥，然后在运行程序的 shell 中 "
                f"`export {variable}=...`",
            ),
        )
    key, shown = choice.key, redact_key(choice.key)
    if choice.shadowed is not None:
        return _result(
            "api_key",
            "warn",
            TITLE_KEY,
            f"{choice.source} ({shown}) and {choice.shadowed} are both set and differ; "
            f"google-genai uses {choice.source}",
            f"{choice.source}（{shown}）和 {choice.shadowed} 都已设置且不同；"
            f"google-genai 使用 {choice.source}",
            Text(
                f"unset the one you do not mean (`unset {choice.shadowed}` or "
                f"`unset {choice.source}`) so every tool uses the same key",
                f"取消不需要的那个（`unset {choice.shadowed}` 或 `unset {choice.source}`），"
                "让所有工具使用同一个密钥",
            ),
        )
    if key != key.strip() or key[:1] in "\"'" or key[-1:] in "\"'":
        return _result(
            "api_key",
            "fail",
            TITLE_KEY,
            f"{choice.source} ({shown}) has surrounding spaces, a newline or quotes",
            f"{choice.source}（{shown}）首尾带有空格、换行或引号",
            Text(
                f"set {choice.source} to the bare key, without quotes or whitespace",
                f"把 {choice.source} 设为不带引号和空白的纯密钥",
            ),
        )
    if not _KEY_FORMAT.fullmatch(key):
        return _result(
            "api_key",
            "warn",
            TITLE_KEY,
            f"{choice.source} ({_with_length(key, shown)}) does not look like a Gemini "
            "API key (AIza followed by 35 characters)",
            f"{choice.source}（{_with_length(key, shown, zh=True)}）看起来不像 Gemini API 密钥"
            "（AIza 加 35 个字符）",
            Text(
                "copy the whole key again from https://aistudio.google.com/apikey "
                "(ignore this if a gateway hands out its own tokens)",
                "从 https://aistudio.google.com/apikey 重新完整复制密钥"
                "（若网关使用自有令牌可忽略）",
            ),
        )
    return _result(
        "api_key",
        "ok",
        TITLE_KEY,
        f"{choice.source} is set ({shown}); the format looks right",
        f"已设置 {choice.source}（{shown}）；格式正确",
    )


# --- SDK version ---------------------------------------------------------------------------

TITLE_SDK = Text("google-genai version", "google-genai 版本")


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:3]:
        digits = re.match(r"\d+", piece)
        parts.append(int(digits.group()) if digits else 0)
    return tuple(parts)


def _installed(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_sdk_version(
    installed: str | None = None, *, legacy: str | None = None, probe: bool = True
) -> CheckResult:
    """google-genai against the oldest known good release; the legacy SDK flagged.

    `installed` and `legacy` (google-generativeai's version) default to what is
    installed when `probe` is true.
    """
    if probe:
        installed = installed or _installed("google-genai")
        legacy = legacy or _installed("google-generativeai")
    upgrade = Text(
        f'pip install -U "google-genai>={OLDEST_KNOWN_GOOD_SDK},<4"',
        f'pip install -U "google-genai>={OLDEST_KNOWN_GOOD_SDK},<4"',
    )
    if installed is None:
        return _result(
            "sdk_version",
            "fail",
            TITLE_SDK,
            "google-genai is not installed",
            "未安装 google-genai",
            upgrade,
        )
    version = _version_tuple(installed)
    if version < _version_tuple(OLDEST_KNOWN_GOOD_SDK):
        return _result(
            "sdk_version",
            "fail",
            TITLE_SDK,
            f"google-genai {installed} is older than {OLDEST_KNOWN_GOOD_SDK}, the oldest "
            f"release gemini-guard supports (tested with {TESTED_SDK})",
            f"google-genai {installed} 早于 gemini-guard 支持的最低版本 {OLDEST_KNOWN_GOOD_SDK}"
            f"（测试版本 {TESTED_SDK}）",
            upgrade,
        )
    if version[0] > _version_tuple(TESTED_SDK)[0]:
        return _result(
            "sdk_version",
            "warn",
            TITLE_SDK,
            f"google-genai {installed} is a newer major release than gemini-guard was tested "
            f"with ({TESTED_SDK})",
            f"google-genai {installed} 是比测试版本（{TESTED_SDK}）更新的大版本",
            Text('pin "google-genai<4" if anything breaks', '如有问题可固定 "google-genai<4"'),
        )
    if legacy is not None:
        return _result(
            "sdk_version",
            "warn",
            TITLE_SDK,
            f"google-genai {installed} is fine, but the deprecated google-generativeai "
            f"{legacy} is installed too; code importing google.generativeai gets no fixes",
            f"google-genai {installed} 没问题，但同时装有已弃用的 google-generativeai {legacy}；"
            "导入 google.generativeai 的代码不会再得到修复",
            Text(
                "move that code to `from google import genai`, then "
                "`pip uninstall google-generativeai`",
                "把这些代码改为 `from google import genai`，"
                "然后 `pip uninstall google-generativeai`",
            ),
        )
    return _result(
        "sdk_version",
        "ok",
        TITLE_SDK,
        f"google-genai {installed} (oldest known good: {OLDEST_KNOWN_GOOD_SDK})",
        f"google-genai {installed}（最低可用版本：{OLDEST_KNOWN_GOOD_SDK}）",
    )
