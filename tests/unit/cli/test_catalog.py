"""Every message the CLI passes through the catalog has its Chinese text."""

from __future__ import annotations

import ast
import string
from pathlib import Path

import click
import pytest

import gemini_guard.cli
from gemini_guard.cli import _SUBCOMMANDS, main
from gemini_guard.cli._i18n import ZH, help_key, lang_from_env

CLI_DIR = Path(gemini_guard.cli.__file__).parent


def _messages() -> list[tuple[str, int, str]]:
    found = []
    for path in sorted(CLI_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "_"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.append((path.name, node.lineno, node.args[0].value))
    return found


def test_the_batch_progress_wording_has_chinese() -> None:
    # the batch runner's lines are not `_("...")` calls: the CLI hands it `_` to use
    from gemini_guard.batch.progress import WORDING

    assert [text for text in WORDING if text not in ZH] == []


def test_the_batch_api_wording_has_chinese() -> None:
    from gemini_guard.batch.batch_api import WORDING

    assert [text for text in WORDING if text not in ZH] == []


def test_the_cli_uses_the_catalog() -> None:
    assert len(_messages()) > 50


def test_every_message_has_a_chinese_text_with_the_same_fields() -> None:
    missing = [f"{file}:{line}: {text!r}" for file, line, text in _messages() if text not in ZH]
    assert not missing, "\n".join(missing)
    fields = string.Formatter()
    for english, chinese in ZH.items():
        keys = {f for _, f, _, _ in fields.parse(english) if f}
        assert keys == {f for _, f, _, _ in fields.parse(chinese) if f}, english


def _help_texts() -> list[tuple[str, str]]:
    texts = [("main", help_key(main.help or ""))]
    for name in sorted(_SUBCOMMANDS):
        ctx = click.Context(main)
        command = main.get_command(ctx, name)
        assert command is not None
        texts.append((name, help_key(command.help or "")))
        texts += [
            (f"{name} {p.name}", p.help)
            for p in command.params
            if isinstance(p, click.Option) and p.help and not p.hidden
        ]
    return texts


@pytest.mark.parametrize(("where", "text"), _help_texts())
def test_every_help_text_has_a_chinese_text(where: str, text: str) -> None:
    assert text in ZH, f"{where}: no Chinese for {text!r}"


@pytest.mark.parametrize(
    ("env", "lang"),
    [
        ({}, "en"),
        ({"LANG": "zh_CN.UTF-8"}, "zh"),
        ({"LANG": "zh_TW"}, "zh"),
        ({"LANG": "en_US.UTF-8", "LC_ALL": "zh_CN.UTF-8"}, "zh"),
        ({"LANG": "zh_CN.UTF-8", "LC_ALL": "C"}, "en"),
        ({"LC_MESSAGES": "zh_HK.UTF-8"}, "zh"),
    ],
)
def test_the_language_comes_from_the_locale(env: dict[str, str], lang: str) -> None:
    assert lang_from_env(env) == lang


def test_every_scenario_the_cli_names_has_a_chinese_description() -> None:
    from gemini_guard.cli._scenarios import scenario_names

    english, chinese = scenario_names(), scenario_names("zh")
    assert english.keys() == chinese.keys()
    assert [name for name in english if english[name] == chinese[name]] == []


@pytest.mark.parametrize(
    ("english", "chinese"),
    [
        (
            "Invalid value for '--tier': 'gold' is not one of 'auto', 'free'.",
            "'--tier' 的值无效：'gold' 不是 'auto', 'free' 之一。",
        ),
        ("No such option: --bogus", "没有选项 --bogus"),
        ("No such option: --tiers Did you mean --tier?", "没有选项 --tiers。你是不是想用 --tier？"),
        ("Missing argument 'INPUT.jsonl'.", "缺少参数 'INPUT.jsonl'。"),
        (
            "Invalid value for '--port': 70000 is not in the range 0<=x<=65535.",
            "'--port' 的值无效：70000 不在 0<=x<=65535 范围内。",
        ),
        ("--prompts 和 --concurrency 必须 >= 1", "--prompts 和 --concurrency 必须 >= 1"),
    ],
)
def test_click_s_own_messages_in_chinese(english: str, chinese: str) -> None:
    from gemini_guard.cli._click_zh import in_chinese

    assert in_chinese(english) == chinese
