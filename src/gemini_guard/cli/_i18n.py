"""The CLI's words in English and Chinese: one catalog, keyed by the English text.

`_("{n} done", n=3)` returns the text in the command's language (`--lang`, else the
locale), formatted with the keywords. The English text is the key, so a message reads
where it is used; a test parses every `_("...")` in the CLI and fails on one with no
Chinese entry here. Words that are not prose (model names, URLs, JSON keys, flags) stay
as they are in both languages.

Help texts go through the same catalog: the commands' class translates its docstring
and each option's help when it renders `--help` in Chinese.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

import click

__all__ = ["ZH", "Lang", "_", "current_lang", "lang_from_env", "translate"]

Lang = Literal["en", "zh"]
_LANG_KEY = "gemini_guard.lang"


def lang_from_env(environ: Mapping[str, str] | None = None) -> Lang:
    """The locale's language as POSIX looks it up: LC_ALL, then LC_MESSAGES, then LANG."""
    env = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name, "")
        if value:
            head = value.strip().lower().replace("-", "_").split("_")[0].split(".")[0]
            return "zh" if head == "zh" else "en"
    return "en"


def set_lang(ctx: click.Context, lang: str | None) -> Lang:
    """Record `--lang` for this command and the ones under it; None keeps what an outer
    `--lang` chose (`gemini-guard --lang zh batch ...`), else the locale's."""
    if lang is None:
        chosen: Lang = ctx.meta.get(_LANG_KEY) or lang_from_env()
    else:
        chosen = "zh" if lang.lower() == "zh" else "en"
    ctx.meta[_LANG_KEY] = chosen
    return chosen


def current_lang() -> Lang:
    """`--lang` of the running command, else the locale's."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and _LANG_KEY in ctx.meta:
        lang: Lang = ctx.meta[_LANG_KEY]
        return lang
    return lang_from_env()


def translate(text: str, lang: Lang) -> str:
    if lang == "zh":
        return ZH.get(text, text)
    return text


def _(text: str, /, **values: object) -> str:
    out = translate(text, current_lang())
    return out.format(**values) if values else out


# fmt: off
ZH: dict[str, str] = {
    # --- shared: exit codes, errors, click's own headings -------------------------------
    "Exit codes: 0 success; 1 the command ran and found a problem; 2 usage error; "
    "130 interrupted.":
        "退出码：0 成功；1 命令已运行但发现问题；2 用法错误；130 被中断。",
    "Show this message and exit.": "显示此帮助并退出。",
    "Show the version and exit.": "显示版本并退出。",
    "Language of the output: en or zh (default: from LC_ALL / LC_MESSAGES / LANG; "
    "zh for zh_*).":
        "输出语言：en 或 zh（默认取自 LC_ALL / LC_MESSAGES / LANG；zh_* 为中文）。",
    "Show the Python traceback of an error (also GEMINI_GUARD_DEBUG=1).":
        "出错时显示 Python 回溯（也可设 GEMINI_GUARD_DEBUG=1）。",
    "Print the result as JSON (one stable schema; see docs/cli.md).":
        "以 JSON 输出结果（固定结构，见 docs/cli.md）。",
    "error": "错误",
    "interrupted": "已中断",
    "{what}: {path}: {reason}. {fix}": "{what}：{path}：{reason}。{fix}",
    "cannot read": "无法读取",
    "cannot write": "无法写入",
    "cannot open": "无法打开",
    "the directory does not exist": "目录不存在",
    "it is a directory, not a file": "它是目录，不是文件",
    "permission denied": "权限不足",
    "the disk is full": "磁盘已满",
    "it is not a text file (UTF-8 TOML expected)": "它不是文本文件（应为 UTF-8 编码的 TOML）",
    "Create the directory or choose another path.": "请创建该目录或换一个路径。",
    "Give the path of a file.": "请给出文件路径。",
    "Check the file's permissions or choose another path.": "请检查文件权限或换一个路径。",
    "Free some space or choose another disk.": "请释放空间或换一块磁盘。",
    "Check the path.": "请检查路径。",
    "Give the gemini-guard.toml file.": "请给出 gemini-guard.toml 文件。",
    "Fix the setting or rerun with --debug for the traceback.":
        "请修正该设置，或加 --debug 查看回溯。",
    "the [telemetry] jsonl file": "[telemetry] jsonl 文件",
    "Fix [telemetry] jsonl in the configuration, or its permissions.":
        "请修正配置中的 [telemetry] jsonl 或其权限。",
    "Usage: ": "用法：",
    "Options": "选项",
    "Commands": "命令",
    "[default: {value}]": "[默认：{value}]",
    "[required]": "[必填]",
    # --- the group --------------------------------------------------------------------
    "Keep applications that call the Gemini API working through its errors.":
        "让调用 Gemini API 的应用在各种错误中保持可用。",
    "Shell completion: eval \"$(_GEMINI_GUARD_COMPLETE=bash_source gemini-guard)\" "
    "(zsh_source, fish_source for those shells).":
        "Shell 补全：eval \"$(_GEMINI_GUARD_COMPLETE=bash_source gemini-guard)\""
        "（zsh 用 zsh_source，fish 用 fish_source）。",
}
# fmt: on
