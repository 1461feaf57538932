"""Reading a batch's input: one JSON request per line, bad lines set aside.

Each line is an object with an `id` and either a `prompt` (text) or full `contents`,
plus an optional `config` (a GenerateContentConfig as a dict) and `model`:

    {"id": "q1", "prompt": "Summarise ..."}
    {"id": "q2", "contents": [{"role": "user", "parts": [{"text": "..."}]}],
     "config": {"temperature": 0.2}, "model": "gemini-2.5-pro"}

A malformed line or a repeated id does not stop the run: it becomes an `InputProblem`
(with its line number) and is written to the errors file; the good lines run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BatchRequest",
    "InputProblem",
    "ReadResult",
    "parse_line",
    "read_requests",
    "to_request",
    "write_problems",
]

_FIELDS = {"id", "prompt", "contents", "config", "model"}


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One request of a batch. `line` is its 1-based line in the input (0: not from a file)."""

    id: str
    contents: Any
    config: Mapping[str, Any] | None = None
    model: str | None = None
    line: int = 0


@dataclass(frozen=True, slots=True)
class InputProblem:
    """A line that was set aside, and why (in English and in Chinese)."""

    line: int
    message: str
    id: str | None = None
    message_zh: str = ""

    def explain(self, lang: str = "en") -> str:
        """Why the line was set aside, in `lang` (en or zh)."""
        return self.message_zh if lang == "zh" and self.message_zh else self.message

    def to_json(self) -> dict[str, Any]:
        # the errors file is data for programs: one language, whatever the user's locale
        return {"line": self.line, "id": self.id, "error": self.message}


@dataclass(frozen=True, slots=True)
class ReadResult:
    requests: tuple[BatchRequest, ...]
    problems: tuple[InputProblem, ...]


class _Bad(ValueError):
    def __init__(self, message: str, message_zh: str, id: str | None = None) -> None:
        super().__init__(message)
        self.message_zh = message_zh
        self.id = id


def to_request(raw: object, *, line: int = 0) -> BatchRequest:
    """A `BatchRequest` from a decoded JSON object; ValueError saying what is wrong."""
    try:
        return _to_request(raw, line)
    except _Bad as exc:
        raise ValueError(str(exc)) from None


def _to_request(raw: object, line: int) -> BatchRequest:
    if not isinstance(raw, Mapping):
        kind = type(raw).__name__
        raise _Bad(f"expected a JSON object, got {kind}", f"应为 JSON 对象，实际是 {kind}")
    ident = raw.get("id")
    if isinstance(ident, bool) or not isinstance(ident, str | int) or ident == "":
        raise _Bad(
            '"id" is missing or not a non-empty string/integer; add e.g. "id": "q1"',
            '缺少 "id"，或它不是非空的字符串/整数；请加上，例如 "id": "q1"',
        )
    name = str(ident)
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        names, allowed = ", ".join(map(repr, unknown)), ", ".join(sorted(_FIELDS))
        raise _Bad(
            f"unknown field(s) {names}; allowed: {allowed}",
            f"未知字段 {names}；允许的字段：{allowed}",
            name,
        )
    has_prompt = raw.get("prompt") is not None
    has_contents = raw.get("contents") is not None
    if has_prompt == has_contents:
        raise _Bad(
            'give exactly one of "prompt" (text) or "contents"',
            '"prompt"（文本）和 "contents" 必须给且只给一个',
            name,
        )
    if has_prompt and not isinstance(raw["prompt"], str):
        raise _Bad(
            '"prompt" must be a string; use "contents" for structured input',
            '"prompt" 必须是字符串；结构化输入请用 "contents"',
            name,
        )
    contents = raw["prompt"] if has_prompt else raw["contents"]
    if isinstance(contents, str) and not contents.strip():
        raise _Bad("the prompt is empty", "提示为空", name)
    config = raw.get("config")
    if config is not None and not isinstance(config, Mapping):
        raise _Bad(
            '"config" must be an object such as {"temperature": 0.2}',
            '"config" 必须是对象，例如 {"temperature": 0.2}',
            name,
        )
    model = raw.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise _Bad(
            '"model" must be a model name such as "gemini-2.5-flash"',
            '"model" 必须是模型名，例如 "gemini-2.5-flash"',
            name,
        )
    return BatchRequest(id=name, contents=contents, config=config, model=model, line=line)


def parse_line(text: str, line: int) -> BatchRequest | InputProblem | None:
    """One input line: a request, a problem, or None for a blank line."""
    if not text.strip():
        return None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        return InputProblem(
            line=line,
            message=f"not valid JSON: {exc.msg} (column {exc.colno})",
            message_zh=f"不是有效的 JSON：{exc.msg}（第 {exc.colno} 列）",
        )
    try:
        return _to_request(raw, line)
    except _Bad as exc:
        return InputProblem(line=line, message=str(exc), id=exc.id, message_zh=exc.message_zh)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open("rb") as handle:
        for number, data in enumerate(handle, start=1):
            try:
                yield number, data.decode("utf-8")
            except UnicodeDecodeError:
                yield number, "\0not utf-8"


def read_requests(path: str | Path) -> ReadResult:
    """Every request of the JSONL file `path`; bad lines and repeated ids as problems.

    The first line with a given id wins; later ones are problems naming the first.
    """
    path = Path(path)
    requests: list[BatchRequest] = []
    problems: list[InputProblem] = []
    first_line: dict[str, int] = {}
    for number, text in _lines(path):
        if text.startswith("\0"):
            problems.append(
                InputProblem(line=number, message="not UTF-8 text", message_zh="不是 UTF-8 文本")
            )
            continue
        parsed = parse_line(text, number)
        if parsed is None:
            continue
        if isinstance(parsed, InputProblem):
            problems.append(parsed)
        elif parsed.id in first_line:
            first = first_line[parsed.id]
            problems.append(
                InputProblem(
                    line=number,
                    message=f"duplicate id {parsed.id!r} (first on line {first}); "
                    "this line was skipped",
                    id=parsed.id,
                    message_zh=f"重复的 id {parsed.id!r}（首次出现在第 {first} 行）；已跳过此行",
                )
            )
        else:
            first_line[parsed.id] = number
            requests.append(parsed)
    return ReadResult(tuple(requests), tuple(problems))


def write_problems(path: str | Path, problems: Iterable[InputProblem]) -> int:
    """Write `problems` as JSON lines to `path` (replacing it); how many were written.
    With no problems, a stale errors file from an earlier run is removed."""
    path = Path(path)
    items = list(problems)
    if not items:
        path.unlink(missing_ok=True)
        return 0
    with path.open("w", encoding="utf-8") as handle:
        for problem in items:
            handle.write(json.dumps(problem.to_json(), ensure_ascii=False) + "\n")
    return len(items)
