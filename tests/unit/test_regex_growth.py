"""Every regular expression of the feature families runs in linear time on adversarial input.

A ticket text is attacker-controlled, and Python's engine backtracks: the money pattern once took 19 s
on a 10,000-character "1,1,1,..." ticket. No test here asserts an absolute time (the machine is shared);
each compares growth instead: the best-of-N CPU time of ``findall`` on 10,000 characters against
2,500. Linear work grows about 4x, quadratic 16x; the bound is 8x. ``pytest -s`` prints the figures:
each pattern's worst growth and its slowest input at 10,000 characters (absolute, for information).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import ticket_triage.features as features_package
from ticket_triage.features import base, metadata, patterns, readability

SMALL, LARGE = 2_500, 10_000
MAX_GROWTH = 8.0  # linear ~4, quadratic ~16
# A single scan of 250 characters that takes this long is already broken: fail before the larger ones
# (the old reference-number pattern was cubic: 7 s at 1,000 characters, hours at 10,000).
BROKEN_AT_TINY_S = 0.02
MIN_SAMPLE_S = 0.002  # repeat a scan until one sample takes this long, so timer noise stays small
BEST_OF = 4

MODULES = (base, metadata, patterns, readability)


def _all_patterns() -> dict[str, re.Pattern[str]]:
    """Every compiled pattern the feature modules hold, at module level or in ``patterns.PATTERNS``."""
    found: dict[str, re.Pattern[str]] = {}
    for module in MODULES:
        short = module.__name__.rsplit(".", 1)[-1]
        for name, value in vars(module).items():
            if isinstance(value, re.Pattern):
                found[f"{short}.{name}"] = value
    for name, value in patterns.PATTERNS.items():
        found[f"patterns.{name}"] = value
    return found


ALL_PATTERNS = _all_patterns()


@dataclass(frozen=True)
class Attack:
    """``prefix`` + ``unit`` repeated + ``suffix``, cut to an exact length."""

    prefix: str
    unit: str
    suffix: str = ""

    def text(self, n: int) -> str:
        body = n - len(self.prefix) - len(self.suffix)
        return self.prefix + (self.unit * (body // len(self.unit) + 1))[:body] + self.suffix

    def __str__(self) -> str:
        return f"{self.prefix!r}+{self.unit!r}*+{self.suffix!r}"


# Runs of separators a pattern's start accepts (each start used to rescan the rest), runs that end
# in a character the pattern cannot take, and keyword + long whitespace (split between several \s*).
ATTACKS = (
    Attack("", "1,"),
    Attack("", "1,", "x"),
    Attack("$", "1,", "x"),
    Attack("", "1."),
    Attack("", "12-", "!"),
    Attack("", "1"),
    Attack("", "1 "),
    Attack("", "a."),
    Attack("", "a.", "@"),
    Attack("", "a@"),
    Attack("a@", "b-"),
    Attack("", "a-"),
    Attack("", "www."),
    Attack("", "order-"),
    Attack("", "orderx-"),
    Attack("error", " ", "x"),
    Attack("order", " ", "#x"),
    Attack("http", " ", "x"),
    Attack("err-", "1", "x"),
    Attack("#", "1", "x"),
    Attack("A", "A", "a"),
    Attack("", "."),
    Attack("", ".", "x"),
    Attack("", "!?", "x"),
    Attack("", " "),
    Attack("", " \n"),
    Attack("", "a'"),
    Attack("", "_-"),
)


def _sample(pattern: re.Pattern[str], text: str, repeat: int) -> float:
    start = time.process_time()
    for _ in range(repeat):
        pattern.findall(text)
    return time.process_time() - start


def _growth(pattern: re.Pattern[str], attack: Attack) -> tuple[float, float, float]:
    """(seconds per scan at SMALL, at LARGE, ratio); fails at once when SMALL alone is already slow."""
    tiny = _sample(pattern, attack.text(SMALL // 10), 1)
    assert tiny < BROKEN_AT_TINY_S, f"{attack} took {tiny:.3f} s at {SMALL // 10} characters"
    small, large = attack.text(SMALL), attack.text(LARGE)
    once = _sample(pattern, small, 1)
    repeat = max(1, min(2_000, int(MIN_SAMPLE_S / max(once, 1e-6)) + 1))
    t_small = t_large = math.inf
    for _ in range(BEST_OF):  # interleaved, so both sizes see the same load from neighbours
        t_small = min(t_small, _sample(pattern, small, repeat) / repeat)
        t_large = min(t_large, _sample(pattern, large, repeat) / repeat)
    return t_small, t_large, t_large / max(t_small, 1e-9)


def test_every_compiled_pattern_of_the_features_package_is_covered() -> None:
    """A pattern added in another feature module must join MODULES, or it would escape this test."""
    folder = Path(features_package.__file__).parent
    with_patterns = {p.stem for p in folder.glob("*.py") if "re.compile" in p.read_text(encoding="utf-8")}
    assert with_patterns == {m.__name__.rsplit(".", 1)[-1] for m in MODULES}
    assert len(ALL_PATTERNS) >= 17


@pytest.mark.parametrize("name", sorted(ALL_PATTERNS))
def test_pattern_grows_linearly_on_adversarial_input(name: str) -> None:
    pattern = ALL_PATTERNS[name]
    rows = []
    for attack in ATTACKS:
        t_small, t_large, ratio = _growth(pattern, attack)
        for _ in range(2):  # a disturbed linear scan measures clean on a retry; a quadratic never does
            if not MAX_GROWTH <= ratio < 12:
                break
            t_small, t_large, ratio = _growth(pattern, attack)
        rows.append((ratio, t_small, t_large, attack))
    worst = max(rows, key=lambda row: row[0])
    slowest = max(rows, key=lambda row: row[2])
    print(
        f"\n{name:34s} worst growth {worst[0]:4.1f}x on {worst[3]} ({worst[1] * 1e3:.3f} -> "
        f"{worst[2] * 1e3:.3f} ms); slowest at {LARGE:,}: {slowest[2] * 1e3:.3f} ms on {slowest[3]}"
    )
    too_fast = [f"{attack}: {ratio:.1f}x" for ratio, _, _, attack in rows if ratio >= MAX_GROWTH]
    assert not too_fast, f"{name} grows faster than linear: {too_fast}"


# The rewrites keep finding what the old patterns found after the long runs that made them slow.
@pytest.mark.parametrize(
    ("name", "text", "count"),
    [
        ("money_amounts", "1," * 4_000 + "1 usd", 1),
        ("money_amounts", "x" + "1," * 4_000 + "1 usd", 1),  # starts after the first comma: "x1" is a word
        ("money_amounts", ",,5 eur and $1,234.56 and 7,50 €", 3),
        ("money_amounts", "v1,5 usd", 1),
        ("emails", "a." * 4_000 + "a@example.com", 1),
        ("emails", "..anna@example.com, +bob@example.org", 2),
        ("reference_numbers", "order" + " " * 4_000 + "#12345", 1),
        ("reference_numbers", "order-" * 1_000 + "order 12345", 1),
        ("error_codes", "error" + " " * 4_000 + ": 1603", 1),
    ],
)
def test_rewritten_patterns_still_match_after_long_runs(name: str, text: str, count: int) -> None:
    assert len(patterns.PATTERNS[name].findall(text)) == count


def test_sentences_still_end_at_a_run_of_marks_before_a_space() -> None:
    assert readability.count_sentences("Help!!! Now?! " + "." * 5_000 + " done") == 3
    assert readability.count_sentences("v2.1 costs 12.50. Fine") == 2
