"""Reviewers' corrections as training rows, merged into the data the champion learned from.

A correction is one resolved review item, as ``ReviewStore.corrections()`` and ``GET /reviews/export``
give it (oldest answer first). The merge rules, applied in this order:

1. A correction without text or without a category cannot be trained on: it is skipped and counted.
2. The same ticket answered twice (same ticket id; without an id, the same normalised text): the later
   answer wins and the earlier one is skipped as superseded.
3. A correction whose ticket id matches rows of the original data replaces their category, and their
   priority when the correction has one and the champion learned priority. Without an id match, rows with
   the same normalised text (case-folded, whitespace collapsed) are replaced the same way. The original
   text and metadata stay: the reviewer answered the label, not the ticket.
   Its tags, when the export has them and the champion learned tags, replace the row's tag columns (the
   first tag in the first column, and so on; tags beyond the number of columns are dropped).
4. Any other correction is appended as a new row. Fields the champion was not trained on (say, a channel
   the original data never had) are left empty, so the challenger sees the inputs the champion saw.
"""

from __future__ import annotations

import csv
import json
import re
import tempfile
from collections import Counter
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from ticket_triage.data.errors import DataError
from ticket_triage.data.loader import SOURCE, SOURCE_ROW, LoadResult, load_tickets
from ticket_triage.data.schema import (
    CHANNEL,
    CREATED_AT,
    ID,
    LABEL,
    LIST_SEPARATOR,
    PRIORITY,
    TEXT,
    TIER,
    URGENCY,
    ColumnMap,
)
from ticket_triage.feedback import FeedbackError
from ticket_triage.models.tags import TAG_COLUMN_PREFIX

#: The export's text columns, joined like the service joins a request's subject and description.
TEXT_COLUMNS = ("subject", "description")
LABEL_COLUMN = "category"
#: Canonical field -> export column, for the optional fields of a correction.
OPTIONAL_COLUMNS = {
    "priority": "priority",
    "timestamp": "created_at",
    "channel": "channel",
    "tier": "customer_tier",
    "urgency": "urgency",
    "id": "ticket_id",
}
#: The export's tags column (joined by LIST_SEPARATOR), and the frame column it is read into.
TAGS_COLUMN = "tags"
CORRECTED_TAGS = "corrected_tags"
SKIP_SUPERSEDED = "superseded by a later answer for the same ticket"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: Only read by ``corrections()``; the store insists on a lease length.
_READ_ONLY_LEASE_SECONDS = 600


def is_database_url(source: str) -> bool:
    return _URL.match(source) is not None


def describe_source(source: str) -> str:
    """The source as it may be printed and stored: a database URL without its password."""
    if not is_database_url(source):
        return source
    try:
        return make_url(source).render_as_string(hide_password=True)
    except ArgumentError:
        return source.split("://", 1)[0] + "://…"


def normalise_text(text: str) -> str:
    """Match key for a ticket without an id: case and whitespace differences are not a different ticket."""
    return " ".join(str(text).casefold().split())


def read_corrections(source: str) -> LoadResult:
    """Corrections from an export file (CSV, JSON Lines, Parquet) or a review database URL."""
    if is_database_url(source):
        return _from_database(source)
    return _from_file(Path(source))


def _from_database(url: str) -> LoadResult:
    from ticket_triage.review import ReviewStore, make_engine

    shown = describe_source(url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise FeedbackError(f"--corrections {shown} is not a valid database URL: {exc}") from exc
    database = parsed.database
    local = parsed.get_backend_name() == "sqlite" and database and database != ":memory:"
    if local and not Path(str(database)).is_file():  # opening it would create an empty database instead
        raise FeedbackError(f"--corrections {shown}: the database file {database} does not exist")
    try:
        engine = make_engine(url)
    except (ArgumentError, ImportError) as exc:
        raise FeedbackError(f"--corrections {shown}: cannot open the database: {exc}") from exc
    try:
        rows = ReviewStore(engine, lease_seconds=_READ_ONLY_LEASE_SECONDS).corrections()
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise FeedbackError(f"--corrections {shown}: cannot read the review store ({reason})") from exc
    finally:
        engine.dispose()
    if not rows:
        raise FeedbackError(f"--corrections {shown} has no resolved review items: nothing to learn from")
    # Written out exactly as GET /reviews/export?format=jsonl writes them, so a database and its export
    # are read by the same code and give the same rows.
    with tempfile.TemporaryDirectory(prefix="triage-corrections-") as folder:
        path = Path(folder) / "corrections.jsonl"
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
        result = _from_file(path)
    result.frame[SOURCE] = shown
    result.report.warnings[:] = [line.replace(str(path), shown) for line in result.report.warnings]
    return result


def _header(path: Path) -> list[str] | None:
    """The file's column names, or None when the file cannot be read (the loader then says why)."""
    name = path.name.lower()
    try:
        if name.endswith((".jsonl", ".ndjson")):
            keys: dict[str, None] = {}
            with path.open(encoding="utf-8-sig") as handle:
                for line in handle:
                    if line.strip():
                        record = json.loads(line)
                        if isinstance(record, dict):
                            keys.update(dict.fromkeys(record))
            return list(keys)
        if name.endswith(".csv"):
            with path.open(encoding="utf-8-sig", newline="") as handle:
                return next(csv.reader(handle), [])
        if name.endswith((".csv.gz", ".parquet", ".pq")):
            frame = pd.read_csv(path, nrows=0) if name.endswith(".gz") else pd.read_parquet(path)
            return [str(c) for c in frame.columns]
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return None


def correction_columns(header: Collection[str]) -> ColumnMap:
    """How a corrections file maps onto the canonical frame; only ``category`` and a text column are
    required, so a hand-made file with fewer columns than the export still works."""
    text = tuple(c for c in TEXT_COLUMNS if c in header)
    if LABEL_COLUMN not in header or not text:
        wanted = f"{LABEL_COLUMN!r} and at least one of {', '.join(map(repr, TEXT_COLUMNS))}"
        found = ", ".join(map(repr, header)) or "none"
        raise FeedbackError(
            f"a corrections file needs the columns of GET /reviews/export ({wanted}); it has: {found}"
        )
    optional = {name: column for name, column in OPTIONAL_COLUMNS.items() if column in header}
    extra = {CORRECTED_TAGS: TAGS_COLUMN} if TAGS_COLUMN in header else {}
    return ColumnMap(text=text, label=LABEL_COLUMN, extra=extra, **optional)


def _from_file(path: Path) -> LoadResult:
    header = _header(path) if path.is_file() else None
    columns = correction_columns(header) if header is not None else ColumnMap(TEXT_COLUMNS, LABEL_COLUMN)
    try:
        return load_tickets([path], columns, require_label=True)
    except DataError as exc:
        raise FeedbackError(f"--corrections: {exc}") from exc


@dataclass
class MergeReport:
    """What the merge did with every correction; the CLI prints it and the challenger's manifest keeps it."""

    read: int = 0
    overridden_by_id: int = 0
    overridden_by_text: int = 0
    #: Original rows whose labels a correction replaced, and how many of them now carry another category.
    rows_replaced: int = 0
    categories_changed: int = 0
    added: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    #: Categories (of used corrections) the champion never learned: a new queue, or a typo.
    unknown_categories: dict[str, int] = field(default_factory=dict)

    @property
    def overridden(self) -> int:
        return self.overridden_by_id + self.overridden_by_text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"overridden": self.overridden}

    def lines(self) -> list[str]:
        out = [
            f"corrections: {self.read} read, {self.overridden} overrode original rows "
            f"({self.overridden_by_id} by ticket id, {self.overridden_by_text} by text; {self.rows_replaced} "
            f"rows, {self.categories_changed} of them changed category), {self.added} added, "
            f"{sum(self.skipped.values())} skipped"
        ]
        out += [f"corrections: skipped {n} ({reason})" for reason, n in sorted(self.skipped.items())]
        if self.unknown_categories:
            listed = ", ".join(f"{k!r} ({v})" for k, v in sorted(self.unknown_categories.items()))
            out.append(f"corrections: categories the champion never learned: {listed}")
        return out


def merge_corrections(
    original: pd.DataFrame,
    corrections: pd.DataFrame,
    *,
    mapped: Collection[str],
    known_categories: Collection[str] = (),
    skipped: dict[str, int] | None = None,
    read: int | None = None,
) -> tuple[pd.DataFrame, MergeReport]:
    """Apply the module's merge rules to two canonical frames; neither input is modified.

    ``mapped`` names the canonical fields the champion was trained with (e.g. ``channel``); ``skipped``
    carries the rows the loader already dropped, by reason; ``read`` is the number of rows in the source.
    """
    report = MergeReport(read=len(corrections) if read is None else read, skipped=dict(skipped or {}))
    merged = original.reset_index(drop=True).copy()
    tag_columns = [c for c in merged.columns if str(c).startswith(TAG_COLUMN_PREFIX)]
    corr = _with_tag_columns(corrections.reset_index(drop=True), tag_columns)
    corr_text = [normalise_text(t) for t in corr[TEXT]]
    corr_ids = list(corr[ID]) if ID in corr.columns else [None] * len(corr)

    last: dict[str, int] = {}
    for pos, (ticket_id, text) in enumerate(zip(corr_ids, corr_text, strict=True)):
        last[f"id:{ticket_id}" if ticket_id is not None else f"text:{text}"] = pos
    keep = sorted(last.values())
    if len(keep) < len(corr):
        report.skipped[SKIP_SUPERSEDED] = len(corr) - len(keep)

    by_id: dict[str, list[int]] = {}
    if ID in merged.columns:
        for pos, ticket_id in enumerate(merged[ID]):
            if ticket_id is not None:
                by_id.setdefault(str(ticket_id), []).append(pos)
    by_text: dict[str, list[int]] = {}
    for pos, text in enumerate(merged[TEXT]):
        by_text.setdefault(normalise_text(text), []).append(pos)

    use_priority = PRIORITY in merged.columns and PRIORITY in corr.columns
    labels = merged[LABEL].to_numpy(dtype=object, copy=True)
    before = labels.copy()
    priorities = merged[PRIORITY].to_numpy(dtype=object, copy=True) if PRIORITY in merged.columns else None
    replaced: set[int] = set()
    appended: list[int] = []
    known = set(known_categories)
    unknown: Counter[str] = Counter()
    for pos in keep:
        row = corr.iloc[pos]
        if known and row[LABEL] not in known:
            unknown[str(row[LABEL])] += 1
        ticket_id = corr_ids[pos]
        targets = by_id.get(str(ticket_id)) if ticket_id is not None else None
        if targets:
            report.overridden_by_id += 1
        else:
            targets = by_text.get(corr_text[pos])
            if not targets:
                appended.append(pos)
                continue
            report.overridden_by_text += 1
        labels[targets] = row[LABEL]
        if use_priority and priorities is not None and row[PRIORITY] is not None:
            priorities[targets] = row[PRIORITY]
        if tag_columns and row.get(CORRECTED_TAGS) is not None:
            for column in tag_columns:
                merged.loc[targets, column] = row[column]
        replaced.update(targets)
    merged[LABEL] = labels
    if priorities is not None:
        merged[PRIORITY] = priorities
    report.rows_replaced = len(replaced)
    report.categories_changed = int(sum(before[i] != labels[i] for i in replaced))
    report.added = len(appended)
    report.unknown_categories = dict(unknown)

    if appended:
        merged = pd.concat(
            [merged, _as_original(corr.iloc[appended], merged.columns, mapped)], ignore_index=True
        )
        merged[CREATED_AT] = merged[CREATED_AT].astype("datetime64[ns, UTC]")
        for column in merged.columns:  # concat turns all-None object columns into NaN; the loader's is None
            if merged[column].dtype == object:
                merged[column] = merged[column].where(merged[column].notna(), None)
    return merged, report


def _with_tag_columns(corr: pd.DataFrame, tag_columns: list[str]) -> pd.DataFrame:
    """``corr`` with the original frame's tag columns filled from each correction's joined tags."""
    if not tag_columns or CORRECTED_TAGS not in corr.columns:
        return corr
    corr = corr.copy()
    cells: list[list[str | None]] = []
    for joined in corr[CORRECTED_TAGS]:
        tags = (
            []
            if not isinstance(joined, str)
            else [t.strip() for t in joined.split(LIST_SEPARATOR) if t.strip()]
        )
        cells.append((tags + [None] * len(tag_columns))[: len(tag_columns)])
    for j, column in enumerate(tag_columns):
        corr[column] = pd.Series([row[j] for row in cells], index=corr.index, dtype=object)
    return corr


def _as_original(rows: pd.DataFrame, columns: pd.Index, mapped: Collection[str]) -> pd.DataFrame:
    """Appended corrections with exactly the original frame's columns; unmapped fields left empty."""
    always = {
        TEXT,
        LABEL,
        SOURCE,
        SOURCE_ROW,
        PRIORITY,
        ID,
        *(c for c in columns if str(c).startswith(TAG_COLUMN_PREFIX)),
    }
    optional = {CREATED_AT, CHANNEL, TIER, URGENCY}
    out: dict[str, pd.Series] = {}
    index = rows.index
    for column in columns:
        take = column in rows.columns and (column in always or (column in optional and column in mapped))
        if take:
            out[column] = rows[column]
        elif column == CREATED_AT:
            out[column] = pd.Series(pd.NaT, index=index, dtype="datetime64[ns, UTC]")
        else:
            out[column] = pd.Series(None, index=index, dtype=object)
    return pd.DataFrame(out, index=index)
