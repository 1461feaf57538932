"""click's own usage errors, told in Chinese when the command speaks Chinese.

click words its errors in English ("Error: Invalid value for '--tier': 'gold' is not
one of ..."). Its texts are few and stable, so the CLI recognises each one by its shape
and rewrites it; values, options and paths inside stay as they are. A message of our own
(already in Chinese) matches no shape and is kept. The usage line and the hint are taken
when the error is raised: click shows the error after the command's context is gone,
and with it the `--lang` the user chose.
"""

from __future__ import annotations

import re
from typing import IO, Any

import click

__all__ = ["ChineseUsageError", "in_chinese"]

# click's message shapes → Chinese. Checked in order; the inner reason of "Invalid
# value for X: reason" is rewritten by the same table.
_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.S), chinese)
    for pattern, chinese in (
        (r"^Invalid value for (.+?): (.*)$", "{0} 的值无效：{1}"),
        (r"^Invalid value: (.*)$", "值无效：{0}"),
        (r"^Missing argument (.+)\.$", "缺少参数 {0}。"),
        (r"^Missing option (.+)\.$", "缺少选项 {0}。"),
        (r"^Missing parameter: (.+)$", "缺少参数：{0}"),
        (r"^Missing command\.$", "缺少命令。"),
        (r"^No such option: (\S+) Did you mean (.+)\?$", "没有选项 {0}。你是不是想用 {1}？"),
        (r"^No such option: (.+)$", "没有选项 {0}"),
        (r"^No such option (.+)\.$", "没有选项 {0}。"),
        (r"^No such command (.+)\.$", "没有命令 {0}。"),
        (r"^Got unexpected extra arguments? \((.*)\)$", "多余的参数（{0}）"),
        (r"^Option (.+) requires an argument\.$", "选项 {0} 需要一个值。"),
        (r"^Option (.+) requires (\d+) arguments\.$", "选项 {0} 需要 {1} 个值。"),
        (r"^Option (.+) does not take a value\.$", "选项 {0} 不接受值。"),
        (r"^(.+) is not one of (.+)\.$", "{0} 不是 {1} 之一。"),
        (r"^(.+) is not a valid (?:float|integer)(?: range)?\.$", "{0} 不是有效的数字。"),
        (r"^(.+) is not in the range (.+)\.$", "{0} 不在 {1} 范围内。"),
        (r"^(?:File|Directory|Path) (.+) does not exist\.$", "{0} 不存在。"),
        (r"^(?:File|Directory|Path) (.+) is a directory\.$", "{0} 是目录。"),
        (r"^(?:File|Directory|Path) (.+) is a file\.$", "{0} 是文件。"),
        (r"^(?:File|Directory|Path) (.+) is not readable\.$", "{0} 不可读。"),
        (r"^(?:File|Directory|Path) (.+) is not writable\.$", "{0} 不可写。"),
        (r"^Could not open file (.+?): (.*)$", "无法打开文件 {0}：{1}"),
    )
)


def in_chinese(message: str) -> str:
    """click's English `message` in Chinese; a message of another shape unchanged."""
    for pattern, chinese in _SHAPES:
        found = pattern.match(message)
        if found is not None:
            parts = list(found.groups())
            if pattern.pattern.startswith("^Invalid value for"):
                parts[1] = in_chinese(parts[1])
            return chinese.format(*parts)
    return message


class ChineseUsageError(click.UsageError):
    """A usage error shown in Chinese: the usage line, the hint and the message."""

    def __init__(self, error: click.UsageError) -> None:
        super().__init__(in_chinese(error.format_message()), error.ctx)
        ctx = error.ctx
        usage = ctx.get_usage() if ctx is not None else ""
        # the usage line is English when the mistake came before `--lang zh` was read
        if usage.startswith("Usage: "):
            usage = "用法：" + usage.removeprefix("Usage: ")
        self.usage = usage
        self.hint = ""
        if ctx is not None and ctx.command.get_help_option(ctx) is not None:
            option = max(ctx.command.get_help_option_names(ctx), key=len)
            self.hint = f"运行 '{ctx.command_path} {option}' 查看帮助。"

    def show(self, file: IO[Any] | None = None) -> None:
        if self.usage:
            click.echo(f"{self.usage}\n{self.hint}\n", err=True)
        click.echo(f"错误：{self.format_message()}", err=True)
