"""A cheap, offline estimate of how many tokens a request's contents use.

The Gemini API counts tokens with the model's tokenizer (`:countTokens`), which costs a
request. For pacing, preflight checks, `plan` and the emulator an estimate is enough,
as long as it holds for every script: one rule of "about 4 characters per token" is
right for English (a little high, in fact) and several times too low for Chinese,
where a token covers one or two characters.

So text is read by script, each kind of run at its own cost:
- Han characters (Chinese, Japanese kanji): 0.6 token each; kana 0.4; Hangul 0.6;
- full-width punctuation (，。！？「」…): 1 each;
- Latin-script words: 1 token up to 10 letters (the vocabulary holds most words
  whole); a longer one, rarer, 1 token per 4 letters (a word is cut where lower case
  turns upper, as camelCase splits);
- digits: 1 each (Gemini's tokenizer splits numbers digit by digit);
- other letters (Cyrillic, Greek, Arabic, Devanagari...): 0.3 token each;
- ASCII punctuation and symbols: 0.9 each; a line break (or a run of them) 1;
  a run of two or more spaces or tabs (indentation) 1; a single space or tab is free.
The costs were fitted to the token counts of Gemini's own tokenizer (the Gemma 3
SentencePiece vocabulary, which google-genai's LocalTokenizer uses for Gemini 2.x and
3 models) on a calibration set of English, Chinese, code, mixed text, Japanese,
Korean and Russian: see docs/tokens.md for the error per script and
`python -m bench calibrate_tokens` to measure it again.

Each media part counts a fixed 258 tokens (an image up to 384 px, as Google
documents); function calls and responses count by their JSON text. One rule, used
everywhere, so that the emulator's accounting and the Guard's estimate agree; every
character costs at most one token, so a text's length in characters bounds its
estimate (`MAX_TOKENS_PER_CHAR`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CHARS_PER_TOKEN",
    "MAX_TOKENS_PER_CHAR",
    "MEDIA_PART_TOKENS",
    "TextCounts",
    "TextTally",
    "count_text",
    "estimate_text_tokens",
    "estimate_tokens",
    "truncate_to_tokens",
]

# The rough figure for English prose, kept for readers who think in it; the estimate
# itself goes by script (see the module docstring).
CHARS_PER_TOKEN = 4
# No character costs more than one token, so len(text) bounds estimate_text_tokens(text).
MAX_TOKENS_PER_CHAR = 1
MEDIA_PART_TOKENS = 258

_MEDIA_KEYS = ("inline_data", "inlineData", "file_data", "fileData")
_STRUCTURED_KEYS = (
    "function_call",
    "functionCall",
    "function_response",
    "functionResponse",
    "executable_code",
    "executableCode",
    "code_execution_result",
    "codeExecutionResult",
)

# Costs in tokens (see the module docstring; fitted by bench/calibrate_tokens.py).
HAN = 0.6
KANA = 0.4
HANGUL = 0.6
FULLWIDTH_PUNCT = 1.0
WORD = 1.0
WORD_FREE_LETTERS = 10
LETTERS_PER_LONG_WORD_TOKEN = 4
DIGIT = 1.0
OTHER_LETTER = 0.3
SYMBOL = 0.9
LINE_BREAK = 1.0
INDENT = 1.0

_RUNS = re.compile(
    r"(?P<han>[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]+)"
    r"|(?P<kana>[\u3040-\u30ff\u31f0-\u31ff]+)"
    r"|(?P<hangul>[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]+)"
    r"|(?P<wide>[\u3000-\u303f\uff00-\uffef]+)"
    # A word takes the space before it along (it is free), so that prose is half as
    # many matches.
    r"|(?P<word> ?[A-Za-z\u00c0-\u024f]"
    r"(?:[a-z\u00df-\u00ff\u0100-\u024f]+|[A-Z\u00c0-\u00de]+(?![a-z]))?)"
    r"|(?P<digits>[0-9]+)"
    r"|(?P<breaks>[\r\n]+)"
    r"|(?P<indent>[ \t]{2,})"
    r"|(?P<space>[ \t])"
    # Letters of other scripts; a run stops at Latin, CJK and Hangul, priced above.
    r"|(?P<letters>[^\W\d_A-Za-z\u00c0-\u024f\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf"
    r"\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff\uac00-\ud7af\u1100-\u11ff"
    r"\u3130-\u318f\u3000-\u303f\uff00-\uffef]+)"
    r"|(?P<symbols>.)",
    re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class TextCounts:
    """What a text is made of, by the kinds of run the estimate prices differently."""

    han: int = 0
    kana: int = 0
    hangul: int = 0
    fullwidth_punct: int = 0
    words: int = 0
    extra_word_tokens: int = 0  # what words over 10 letters cost beyond 1 token each
    digits: int = 0
    other_letters: int = 0
    symbols: int = 0
    line_breaks: int = 0
    indents: int = 0

    @property
    def tokens(self) -> int:
        """The estimate: each kind at its cost, summed, rounded up."""
        cost = (
            self.han * HAN
            + self.kana * KANA
            + self.hangul * HANGUL
            + self.fullwidth_punct * FULLWIDTH_PUNCT
            + self.words * WORD
            + self.extra_word_tokens
            + self.digits * DIGIT
            + self.other_letters * OTHER_LETTER
            + self.symbols * SYMBOL
            + self.line_breaks * LINE_BREAK
            + self.indents * INDENT
        )
        return math.ceil(cost - 1e-9)


# The groups of _RUNS, by number (match.lastindex), and the TextCounts field each adds to.
_FIELDS = (
    "",
    "han",
    "kana",
    "hangul",
    "fullwidth_punct",
    "words",
    "digits",
    "line_breaks",
    "indents",
    "",  # a single space
    "other_letters",
    "symbols",
)
_WORD_GROUP = _FIELDS.index("words")
_RUN_GROUPS = frozenset(_FIELDS.index(f) for f in ("line_breaks", "indents"))


def _long_word_extra(length: int) -> int:
    """What a word of `length` letters costs beyond its first token."""
    if length <= WORD_FREE_LETTERS:
        return 0
    return -(-length // LETTERS_PER_LONG_WORD_TOKEN) - 1


def count_text(text: str) -> TextCounts:
    """The runs of `text` by kind (see `TextCounts`)."""
    counts, extra = _counts(text)
    fields = {name: counts[i] for i, name in enumerate(_FIELDS) if name}
    return TextCounts(**fields, extra_word_tokens=extra)


_H, _K, _G, _F, _W, _D, _B, _I, _O, _S = (
    _FIELDS.index(name)
    for name in (
        "han", "kana", "hangul", "fullwidth_punct", "words", "digits",
        "line_breaks", "indents", "other_letters", "symbols",
    )
)  # fmt: skip


def _counts(text: str) -> tuple[list[int], int]:
    counts = [0] * len(_FIELDS)
    extra = 0
    word, per_run = _WORD_GROUP, _RUN_GROUPS
    for match in _RUNS.finditer(text):
        group = match.lastindex or 0
        start, end = match.span()
        if group == word:
            counts[group] += 1
            if end - start > WORD_FREE_LETTERS:  # rare: only then drop the leading space
                extra += _long_word_extra(len(match.group().lstrip(" ")))
        elif group in per_run:
            counts[group] += 1
        else:
            counts[group] += end - start
    return counts, extra


def estimate_text_tokens(text: str) -> int:
    """Estimated tokens in `text`, by script (0 for the empty string)."""
    if not text:
        return 0
    # `count_text(text).tokens` without building the TextCounts (this runs on every
    # paced call): the same sum, in the same order, so the same float.
    return _tokens(*_counts(text))


def _tokens(c: list[int], extra: int) -> int:
    cost = (
        c[_H] * HAN
        + c[_K] * KANA
        + c[_G] * HANGUL
        + c[_F] * FULLWIDTH_PUNCT
        + c[_W] * WORD
        + extra
        + c[_D] * DIGIT
        + c[_O] * OTHER_LETTER
        + c[_S] * SYMBOL
        + c[_B] * LINE_BREAK
        + c[_I] * INDENT
    )
    return math.ceil(cost - 1e-9)


class TextTally:
    """The estimate of a text written piece by piece, each piece read once.

    Estimating the whole text again after each piece costs time in the square of its
    length (the emulator writes its answers a sentence at a time until they reach a
    length in tokens). No run the estimate prices (a word with the space before it, a
    run of digits, of line breaks, of one script...) may be split between two pieces:
    a sentence that follows a full stop, its joining space in front of its first word,
    is a piece. Then `tokens` is `estimate_text_tokens` of the pieces joined.
    """

    __slots__ = ("_counts", "_extra")

    def __init__(self) -> None:
        self._counts = [0] * len(_FIELDS)
        self._extra = 0

    def add(self, piece: str) -> None:
        counts, extra = _counts(piece)
        self._counts = [a + b for a, b in zip(self._counts, counts, strict=True)]
        self._extra += extra

    @property
    def tokens(self) -> int:
        return _tokens(self._counts, self._extra)


def truncate_to_tokens(text: str, max_tokens: int) -> str:
    """The longest prefix of `text` whose estimate is at most `max_tokens`.

    The estimate never falls as a text grows, so a binary search over the length finds it.
    """
    if estimate_text_tokens(text) <= max_tokens:
        return text
    low, high = 0, len(text)  # estimate(text[:low]) <= max_tokens < estimate(text[:high])
    while high - low > 1:
        middle = (low + high) // 2
        if estimate_text_tokens(text[:middle]) <= max_tokens:
            low = middle
        else:
            high = middle
    return text[:low]


def estimate_tokens(contents: Any) -> int:
    """Estimated input tokens of `contents` in any shape `generate_content` accepts.

    A string, a list of strings, SDK `Content`/`Part` objects, or REST-style dicts
    (`{"role": ..., "parts": [{"text": ...}]}`), in camelCase or snake_case. Text is
    estimated by script (see `estimate_text_tokens`), each media part at 258 tokens, function calls
    and responses by the length of their JSON.
    """
    return sum(_part_tokens(part) for part in _parts(contents))


def _parts(contents: Any) -> Iterable[Any]:
    """Every part of `contents`, flattened (contents -> content -> parts)."""
    if contents is None:
        return
    if isinstance(contents, str | bytes):
        yield contents
        return
    if hasattr(contents, "model_dump") and not isinstance(contents, Mapping):
        contents = contents.model_dump(exclude_none=True)
    if isinstance(contents, Mapping):
        if "parts" in contents:
            yield from _parts(contents["parts"])
        else:
            yield contents
        return
    if isinstance(contents, Iterable):
        for item in contents:
            yield from _parts(item)
        return
    yield str(contents)


def _part_tokens(part: Any) -> int:
    if isinstance(part, str):
        return estimate_text_tokens(part)
    if isinstance(part, bytes):
        return MEDIA_PART_TOKENS
    if not isinstance(part, Mapping):
        return estimate_text_tokens(str(part))
    tokens = 0
    text = part.get("text")
    if isinstance(text, str):
        tokens += estimate_text_tokens(text)
    if any(part.get(key) is not None for key in _MEDIA_KEYS):
        tokens += MEDIA_PART_TOKENS
    for key in _STRUCTURED_KEYS:
        value = part.get(key)
        if value is not None:
            tokens += estimate_text_tokens(json.dumps(value, default=str, sort_keys=True))
    return tokens
