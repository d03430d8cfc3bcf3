"""Surface patterns counted with regular expressions: urgency and escalation words, shouting,
error codes, money, order/invoice numbers, contact details and length.

These are the cues a human triager skims for: "URGENT!!! production is down" is a priority-1
incident, "error 0x80070005" points at a technical queue, "$49.99" and "INV-2024-001" at billing,
"I want to speak to your manager" at an escalation. TF-IDF sees the words but not the shapes
(any error code, any amount), and the embeddings blur them; counting them makes them explicit.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from ticket_triage.features.base import require_text_frame, texts_of
from ticket_triage.features.readability import count_sentences
from ticket_triage.features.registry import FamilySpec, register

FAMILY = "patterns"
# Counts and ratios read the first 10,000 characters (a pasted 50,000-character log would otherwise
# cost ~70 ms); the two length features always see the whole text.
MAX_CHARS = 10_000

# Word lists are regex fragments matched case-insensitively between word boundaries; a trailing
# \w* accepts inflections ("refund" -> "refunded", "cancel" -> "cancellation", "cancelar").
# English first, then a few German (DE), Spanish (ES), French (FR) and Portuguese (PT) words.
URGENCY_TERMS: tuple[str, ...] = (
    # EN (urgen\w* also covers ES/PT "urgente", FR "urgence", ES "urgencia")
    r"urgen\w*",
    r"asap",
    r"a\.s\.a\.p",
    r"immediately",
    r"right away",
    r"as soon as possible",
    r"critical\w*",
    r"emergenc\w*",
    r"outages?",
    r"(?:is|are|was|were|went|goes|gone|been|still|completely|totally) down",
    r"time[- ]sensitive",
    r"blocker",
    # DE
    r"dringend\w*",
    r"sofort\w*",
    r"umgehend\w*",
    r"eilig\w*",
    r"notfall\w*",
    r"ausfall\w*",
    r"kritisch\w*",
    # ES
    r"inmediat\w*",
    r"cuanto antes",
    r"lo antes posible",
    r"cr[ií]tic[oa]s?",
    r"ca[ií]d[oa]s?",
    # FR
    r"imm[ée]diat\w*",
    r"au plus vite",
    r"critique\w*",
    r"en panne",
    # PT
    r"imediat\w*",
    r"fora do ar",
)
ESCALATION_TERMS: tuple[str, ...] = (
    # EN
    r"manager\w*",
    r"supervisor\w*",
    r"complain\w*",
    r"lawyer\w*",
    r"attorney\w*",
    r"legal action",
    r"cancel\w*",
    r"refund\w*",
    r"unacceptabl\w*",
    r"escalat\w*",
    r"chargeback\w*",
    r"ombudsman",
    r"better business bureau",
    r"consumer protection",
    # DE
    r"beschwer\w*",
    r"vorgesetzt\w*",
    r"anwalt\w*",
    r"k[üu]ndig\w*",
    r"r[üu]ckerstatt\w*",
    r"inakzeptabel\w*",
    r"unversch[äa]mt\w*",
    # ES (PT shares gerente, cancelar, reembolso)
    r"queja\w*",
    r"reclamaci[oó]n\w*",
    r"gerente\w*",
    r"abogad\w*",
    r"reembols\w*",
    r"inaceptable\w*",
    # FR
    r"plainte\w*",
    r"r[ée]clamation\w*",
    r"avocat\w*",
    r"annul\w*",
    r"rembours\w*",
    r"inacceptable\w*",
    # PT
    r"reclama[çc][ãa]o\w*",
    r"advogad\w*",
    r"inaceit[áa]ve\w*",
)


def _terms(terms: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(terms) + r")\b", re.IGNORECASE)


# Every pattern below runs in linear time on any input (tests/unit/test_regex_growth.py measures it).
# Python's engine backtracks and ``findall`` retries at every position, so two things are avoided:
# a quantifier whose characters the next piece could also take (spaces split between ``\s*\s*``,
# digits and commas between ``[\d,]*`` and ``[.,]\d+``: possessive ``*+``/``++`` here, which the
# next piece could never have used anyway), and a start inside a run that the run's first start
# already scanned to its end and failed (a lookbehind lets only the run's first position start).
# The one place neither applies (a reference number's digit may sit anywhere in a long run) looks
# at most 32 characters ahead instead. Against the old patterns: the same counts on all 104,512 texts
# of the shared data sets and on 200,000 random short strings; they differ only where the start rule
# meets a match that ended inside a run ("$1.5,5 usd" and "a@b.c+d@e.f" now count 1, not 2) and on
# a reference whose first digit is more than 32 characters in.

# An amount: digits with thousands commas and an optional decimal part; atomic, since no shorter
# number can be followed by what follows an amount (a space, a currency word or sign).
_NUMBER = r"\d[\d,]*+(?:[.,]\d++)?+"
_CURRENCY_WORDS = r"usd|eur|gbp|chf|cad|aud|brl|mxn|dollars?|euros?|bucks|pounds?"
# Where a number followed by its currency may start: at the first digit of a run of digits and
# commas that stands at a word boundary ("1,5 usd", ",5 usd"), else just after the run's first
# comma that a digit follows ("v1,5 usd"). Every later start in the run ends where the first does,
# so trying them too only repeats the same failure (quadratic on "1,1,1,...").
_NUMBER_START = r"(?<![\d,])(?>\b(?=\d)|[\d,]*?,(?=\d))"

PATTERNS: dict[str, re.Pattern[str]] = {
    "urgency_words": _terms(URGENCY_TERMS),
    "escalation_words": _terms(ESCALATION_TERMS),
    # ERR-1234, error 1603, error code: 1603, 0x80070005, HTTP 500, HTTP/1.1 404, 503 service unavailable,
    # E1234
    "error_codes": re.compile(
        r"\b(?:err(?:or)?[-_]\d{2,}"
        r"|error(?:\s++code)?\s*+[:#]?\s*+\d{2,6}"
        r"|0x[0-9a-f]{4,16}"
        r"|https?(?:/\d(?:\.\d)?)?(?:\s++error)?\s*+[45]\d\d"
        r"|[45]\d\d\s++(?:error|not found|internal server error|bad request|forbidden|unauthorized"
        r"|service unavailable|bad gateway|gateway time-?out)"
        r"|(?-i:E\d{3,5}))\b",
        re.IGNORECASE,
    ),
    # $12.50, € 5, 100 EUR, 20 USD, USD 20, 5,00 €, 30 dollars
    "money_amounts": re.compile(
        rf"[$€£¥]\s?{_NUMBER}"
        rf"|\b(?:usd|eur|gbp|chf)\s?{_NUMBER}"
        rf"|{_NUMBER_START}{_NUMBER}\s?(?:(?:{_CURRENCY_WORDS})\b|[$€£¥])",
        re.IGNORECASE,
    ),
    # order #12345, invoice 88812, ticket no. A-5521, INV-2024-001, PO-7781, #123456
    "reference_numbers": re.compile(
        r"\b(?:order|invoice|ticket|case|ref(?:erence)?|receipt|transaction|tracking|booking|bestellung"
        r"|rechnung|pedido|factura|commande|facture)"
        r"\s*+(?:no\.?|nr\.?|number|num|id)?\s*+[:#]?\s*+(?=[a-z0-9-]{0,31}\d)[a-z0-9][a-z0-9-]{3,}"
        r"|\b(?:inv|ord|tkt|po|ref|case|inc|req|sr)[-#]?\d[\d-]{2,}\b"
        r"|(?<!\w)#\d{4,}\b",
        re.IGNORECASE,
    ),
    "urls": re.compile(r"\b(?:https?://|www\.)[^\s<>\"']++", re.IGNORECASE),
    # The local part starts where a run of address characters starts (after any leading . + -), not
    # again inside it: an address ends at the run's "@" whichever start is taken ("a.a.a..." without
    # an "@" was quadratic).
    "emails": re.compile(r"(?<![\w.+-])[.+-]*+\b[\w.+-]++@[\w-]++(?:\.[\w-]++)++"),
    # +1 (555) 123-4567, 555-123-4567, +49 30 1234567; three digit groups so dates, card numbers,
    # IP addresses and bare order numbers do not count.
    "phone_numbers": re.compile(
        r"(?<![\d+])(?<!\d[\s.-])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?|\d{2,4}[\s.-])\d{3,4}[\s.-]?\d{3,4}"
        r"(?![\s.-]?\d)"
    ),
}
_EXCLAMATION = re.compile(r"[!\uff01]")  # ASCII and full-width
_QUESTION = re.compile(r"[?\uff1f]")  # closing marks only, so a Spanish "¿...?" counts once
# Three or more capitals (Latin-1 range): shouting, and acronyms like ATM alike.
_ALL_CAPS_WORD = re.compile(r"\b[A-ZÀ-ÖØ-Þ]{3,}\b")
_WORD = re.compile(r"[^\W_]+")

FEATURES = (
    "urgency_words",
    "escalation_words",
    "exclamations",
    "exclamations_per_sentence",
    "question_marks",
    "capitals_ratio",
    "all_caps_words",
    "error_codes",
    "money_amounts",
    "reference_numbers",
    "urls",
    "emails",
    "phone_numbers",
    "char_length_log",
    "word_count_log",
)


def _row(full_text: str, max_chars: int) -> list[float]:
    text = full_text[:max_chars]
    letters = sum(map(str.isalpha, text))
    capitals = sum(map(str.isupper, text))
    exclamations = len(_EXCLAMATION.findall(text))
    counts = {name: len(pattern.findall(text)) for name, pattern in PATTERNS.items()}
    values = {
        **counts,
        "exclamations": exclamations,
        "exclamations_per_sentence": exclamations / max(1, count_sentences(text)),
        "question_marks": len(_QUESTION.findall(text)),
        "capitals_ratio": capitals / letters if letters else 0.0,
        "all_caps_words": len(_ALL_CAPS_WORD.findall(text)),
        "char_length_log": math.log1p(len(full_text)),
        "word_count_log": math.log1p(len(_WORD.findall(full_text))),
    }
    return [float(values[name]) for name in FEATURES]


class PatternFeatures(BaseEstimator, TransformerMixin):
    """Fifteen regex counts and ratios per ticket (see ``FEATURES``); stateless."""

    def __init__(self, max_chars: int = MAX_CHARS) -> None:
        self.max_chars = max_chars

    def fit(self, X: pd.DataFrame, y: object = None) -> PatternFeatures:
        self._check(X)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        self._check(X)
        rows = [_row(text, self.max_chars) for text in texts_of(X)]
        out = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(FEATURES))
        return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray([f"{FAMILY}__{name}" for name in FEATURES], dtype=object)

    def __sklearn_is_fitted__(self) -> bool:
        return True  # stateless: usable without fit

    def _check(self, X: pd.DataFrame) -> None:
        require_text_frame(X, "PatternFeatures")
        if isinstance(self.max_chars, bool) or not isinstance(self.max_chars, int) or self.max_chars < 1:
            raise ValueError(f"PatternFeatures.max_chars must be an integer >= 1, got {self.max_chars!r}")


SPEC = register(FamilySpec(FAMILY, PatternFeatures, monitored=r"patterns__(n_chars|char_length|length).*"))
