"""Read ticket files (CSV, Parquet, JSON Lines) into the canonical frame, accounting for every dropped row.

Rows are never lost silently: each drop and each unparseable timestamp is counted in the report, with the
first few 1-based data row numbers so a person can find them in the source file.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ticket_triage.data.canonical import join_text
from ticket_triage.data.errors import DataError
from ticket_triage.data.schema import (
    CHANNEL,
    CREATED_AT,
    ID,
    LABEL,
    METADATA_COLUMNS,
    PRIORITY,
    TEXT,
    TIER,
    URGENCY,
    ColumnMap,
)

SOURCE = "source"  # the path the row was read from, as given
SOURCE_ROW = "source_row"  # 1-based data row in that file (JSON Lines: the line number)

DROP_EMPTY_LABEL = "empty label"
DROP_EMPTY_TEXT = "empty text"

_CSV_SUFFIXES = (".csv", ".csv.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_JSONL_SUFFIXES = (".jsonl", ".ndjson")
_ROWS_LISTED = 5  # how many row numbers a report line quotes
_UTC = "datetime64[ns, UTC]"


@dataclass(frozen=True)
class FileReport:
    """What happened to one input file."""

    file: str
    rows_read: int
    dropped: dict[str, int] = field(default_factory=dict)
    bad_timestamps: int = 0
    bad_timestamp_rows: tuple[int, ...] = ()  # the first few, 1-based data rows

    @property
    def rows_kept(self) -> int:
        return self.rows_read - sum(self.dropped.values())


@dataclass
class LoadReport:
    """Per-file accounting plus human-readable warnings for the CLI to print."""

    files: list[FileReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def rows_kept(self) -> int:
        return sum(f.rows_kept for f in self.files)

    @property
    def dropped(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for f in self.files:
            total.update(f.dropped)
        return dict(total)

    @property
    def bad_timestamps(self) -> int:
        return sum(f.bad_timestamps for f in self.files)


@dataclass
class LoadResult:
    frame: pd.DataFrame
    report: LoadReport


def parse_columns(text: str) -> tuple[str, ...]:
    """Split the CLI's ``"subject,body"`` syntax; a stray comma is a mistake, not an empty column.

    Parsed as one CSV record so a column name containing a comma can be quoted.
    """
    fields = next(csv.reader([text]), [])
    names = tuple(f.strip() for f in fields)
    if not names or any(not n for n in names):
        raise ValueError(f"column list {text!r} is empty or has an empty entry; expected e.g. 'subject,body'")
    duplicates = sorted(n for n, c in Counter(names).items() if c > 1)
    if duplicates:
        raise ValueError(f"column list {text!r} names {', '.join(duplicates)} more than once")
    return names


def load_tickets(paths: Sequence[Path], columns: ColumnMap, *, require_label: bool) -> LoadResult:
    """Load and concatenate ticket files in the given order into one canonical frame.

    With ``require_label`` (training, evaluation) rows without a label and rows with empty text are
    dropped and counted (a row failing both is counted under the label). Without it (prediction) every
    row is kept, so the output lines up one-to-one with the input; empty texts are only counted.
    """
    if not paths:
        raise DataError("no input files given")
    if not columns.text:
        raise DataError("no text column mapped")
    if require_label and not columns.label:
        raise DataError("a label column is required but none was mapped")
    clashes = sorted(
        set(columns.extra) & {TEXT, LABEL, PRIORITY, CREATED_AT, ID, SOURCE, SOURCE_ROW, *METADATA_COLUMNS}
    )
    if clashes:
        raise DataError(f"extra column name(s) {', '.join(clashes)} clash with canonical columns")

    report = LoadReport()
    frames = []
    for path in (Path(p) for p in paths):
        frame, file_report, warnings = _load_one(path, columns, require_label=require_label)
        frames.append(frame)
        report.files.append(file_report)
        report.warnings.extend(warnings)

    frame = pd.concat(frames, ignore_index=True)
    if ID in frame.columns:  # only some files had an id column: the others get None, not NaN
        frame[ID] = frame[ID].astype(object).where(frame[ID].notna(), None)
    frame[CREATED_AT] = frame[CREATED_AT].astype(_UTC)
    return LoadResult(frame=frame, report=report)


def _load_one(
    path: Path, columns: ColumnMap, *, require_label: bool
) -> tuple[pd.DataFrame, FileReport, list[str]]:
    raw, rows = _read_raw(path)
    if raw.empty:
        raise DataError("has no data rows", file=path)
    _check_columns(path, raw, columns)

    parts = [_clean(raw[c]) for c in columns.text]
    text = pd.Series(
        [join_text(values) for values in zip(*parts, strict=True)],
        index=raw.index,
        dtype=object,
    )
    text_empty = text == ""
    if text_empty.all():
        raise DataError("every row has empty text", file=path, column=",".join(columns.text))

    out: dict[str, pd.Series] = {}
    id_column = columns.id or (ID if ID in raw.columns else None)
    if id_column:
        out[ID] = _clean(raw[id_column])
    out[TEXT] = text
    label_empty = pd.Series(False, index=raw.index)
    if columns.label:
        out[LABEL] = _clean(raw[columns.label])
        if require_label:
            label_empty = out[LABEL].isna()
            if label_empty.all():
                raise DataError("label column is entirely empty", file=path, column=columns.label)
    if columns.priority:
        out[PRIORITY] = _clean(raw[columns.priority])
    bad_timestamp = pd.Series(False, index=raw.index)
    if columns.timestamp:
        out[CREATED_AT], bad_timestamp = _parse_timestamps(raw[columns.timestamp])
    else:
        out[CREATED_AT] = pd.Series(pd.NaT, index=raw.index, dtype=_UTC)
    for name, source in ((CHANNEL, columns.channel), (TIER, columns.tier), (URGENCY, columns.urgency)):
        out[name] = _clean(raw[source]) if source else pd.Series(None, index=raw.index, dtype=object)
    for name, source in columns.extra.items():
        out[name] = _clean(raw[source])
    out[SOURCE] = pd.Series(str(path), index=raw.index, dtype=object)
    out[SOURCE_ROW] = rows

    dropped = {}
    warnings: list[str] = []
    drop_text = text_empty & ~label_empty if require_label else pd.Series(False, index=raw.index)
    if not require_label and text_empty.any():
        warnings.append(f"{path}: {int(text_empty.sum())} row(s) have empty text ({_rows(rows[text_empty])})")
    for reason, mask in ((DROP_EMPTY_LABEL, label_empty), (DROP_EMPTY_TEXT, drop_text)):
        if mask.any():
            dropped[reason] = int(mask.sum())
            warnings.append(f"{path}: dropped {int(mask.sum())} row(s) with {reason} ({_rows(rows[mask])})")
    keep = ~(label_empty | drop_text)
    frame = pd.DataFrame(out)[keep].reset_index(drop=True)
    if frame.empty:
        raise DataError("no usable rows left after dropping rows with empty label or text", file=path)

    bad_rows = rows[keep & bad_timestamp]
    if len(bad_rows):
        first = raw.loc[bad_rows.index[0], columns.timestamp]
        warnings.append(
            f"{path}: {len(bad_rows)} timestamp(s) in column {columns.timestamp!r} could not be parsed "
            f"and were set to NaT ({_rows(bad_rows)}; first value {first!r})"
        )
    if columns.priority and frame[PRIORITY].isna().any():
        missing = frame[PRIORITY].isna()
        warnings.append(
            f"{path}: {int(missing.sum())} row(s) have no priority in column {columns.priority!r} "
            f"({_rows(frame.loc[missing, SOURCE_ROW])})"
        )

    file_report = FileReport(
        file=str(path),
        rows_read=len(raw),
        dropped=dropped,
        bad_timestamps=len(bad_rows),
        bad_timestamp_rows=tuple(int(r) for r in bad_rows.head(_ROWS_LISTED)),
    )
    return frame, file_report, warnings


def _read_raw(path: Path) -> tuple[pd.DataFrame, pd.Series]:
    """The file's cells as read, plus each row's 1-based number for messages."""
    name = path.name.lower()
    if not name.endswith(_CSV_SUFFIXES + _PARQUET_SUFFIXES + _JSONL_SUFFIXES):
        known = ", ".join(_CSV_SUFFIXES + _PARQUET_SUFFIXES + _JSONL_SUFFIXES)
        raise DataError(f"unknown file type; expected one of {known}", file=path)
    if not path.is_file():
        raise DataError("file not found" if not path.exists() else "not a regular file", file=path)
    try:
        if name.endswith(_JSONL_SUFFIXES):
            return _read_jsonl(path)
        raw = _read_csv(path) if name.endswith(_CSV_SUFFIXES) else _read_parquet(path)
    except OSError as exc:
        raise DataError(f"cannot be read ({exc.strerror or exc})", file=path) from exc
    return raw, pd.Series(range(1, len(raw) + 1), index=raw.index, dtype="int64")


def _read_csv(path: Path) -> pd.DataFrame:
    # Everything as text so IDs such as "00123" keep their zeros; "" becomes missing in _clean.
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError as exc:
        raise DataError("has no data rows", file=path) from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"is not UTF-8 text (byte {exc.start}); re-save it as UTF-8", file=path) from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"cannot be parsed as CSV: {exc}", file=path, row=_csv_error_row(str(exc))) from exc


def _csv_error_row(message: str) -> int | None:
    """The 1-based data row from pandas' parser message ("line N" counts the header, "row N" from 0)."""
    if match := re.search(r"\bline (\d+)", message):
        return max(int(match.group(1)) - 1, 1)
    if match := re.search(r"\brow (\d+)", message):
        return max(int(match.group(1)), 1)
    return None


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (ValueError, TypeError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"cannot be read as Parquet: {exc}", file=path) from exc


def _read_jsonl(path: Path) -> tuple[pd.DataFrame, pd.Series]:
    records: list[dict[str, object]] = []
    lines: list[int] = []
    try:
        with path.open(encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"line is not valid JSON ({exc.msg})", file=path, row=number) from exc
                if not isinstance(record, dict):
                    raise DataError(
                        f"line holds a JSON {type(record).__name__}, expected an object",
                        file=path,
                        row=number,
                    )
                records.append(record)
                lines.append(number)
    except UnicodeDecodeError as exc:
        raise DataError(f"is not UTF-8 text (byte {exc.start}); re-save it as UTF-8", file=path) from exc
    except OSError as exc:
        raise DataError(f"cannot be read ({exc.strerror or exc})", file=path) from exc
    raw = pd.DataFrame(records, dtype=object)  # object: an int id with gaps must not turn into 42.0
    return raw, pd.Series(lines, index=raw.index, dtype="int64")


def _check_columns(path: Path, raw: pd.DataFrame, columns: ColumnMap) -> None:
    wanted = [*columns.text, *columns.source_columns().values(), *columns.extra.values()]
    missing = [c for c in dict.fromkeys(wanted) if c not in raw.columns]
    if missing:
        available = ", ".join(repr(str(c)) for c in raw.columns)
        raise DataError(f"column not found; the file has: {available}", file=path, column=", ".join(missing))


def _clean_value(value: object) -> str | None:
    if isinstance(value, str):
        text = value.strip()
    elif value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    elif isinstance(value, float) and value.is_integer():  # Parquet stores an int column with gaps as float
        text = str(int(value))
    else:
        text = str(value).strip()
    return text or None


def _clean(series: pd.Series) -> pd.Series:
    """Cells as stripped strings, with blanks and nulls as None (whatever type the file stored)."""
    return pd.Series([_clean_value(v) for v in series], index=series.index, dtype=object)


def _parse_timestamps(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parsed timestamps (naive ones taken as UTC) and a mask of non-empty values that failed to parse."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return pd.to_datetime(values, utc=True).astype(_UTC), pd.Series(False, index=values.index)
    cleaned = _clean(values)
    parsed = pd.to_datetime(cleaned, utc=True, format="mixed", errors="coerce").astype(_UTC)
    return parsed, cleaned.notna() & parsed.isna()


def _rows(rows: pd.Series) -> str:
    listed = ", ".join(str(int(r)) for r in rows.head(_ROWS_LISTED))
    more = ", …" if len(rows) > _ROWS_LISTED else ""
    return f"row{'s' if len(rows) > 1 else ''} {listed}{more}"
