"""Loading ticket files into the canonical frame, splitting it, and fingerprinting it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ticket_triage.data.errors import DataError
from ticket_triage.data.loader import (
    DROP_EMPTY_LABEL,
    DROP_EMPTY_TEXT,
    SOURCE,
    SOURCE_ROW,
    load_tickets,
    parse_columns,
)
from ticket_triage.data.schema import CHANNEL, CREATED_AT, ID, LABEL, PRIORITY, TEXT, TIER, URGENCY, ColumnMap
from ticket_triage.data.splits import Splits, fingerprint, split_frame

MAP = ColumnMap(
    text=("subject", "body"),
    label="queue",
    priority="prio",
    timestamp="opened",
    channel="via",
    tier="plan",
    id="ticket",
)


def _source() -> pd.DataFrame:
    """A small ticket file as strings, with the awkward cases real exports have."""
    return pd.DataFrame(
        {
            "ticket": ["00123", "00124", "0099", "7"],
            "subject": ["  Cannot log in ", "", "Refund", "Invoice"],
            "body": ["Password rejected.", "Parcel never arrived", "  ", "Charged twice\nplease fix"],
            "queue": ["access", "shipping", "billing ", "billing"],
            "prio": ["high", "low", "", "medium"],
            "opened": ["2025-03-01T09:15:00Z", "2025-03-02 10:00:00+02:00", "2025-03-03", ""],
            "via": ["email", "", "chat", "web"],
            "plan": ["free", "premium", "", "enterprise"],
        }
    )


def _write(frame: pd.DataFrame, path: Path) -> Path:
    name = path.name
    if name.endswith((".csv", ".csv.gz")):
        frame.to_csv(path, index=False)
    elif name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    return path


def _error(paths: list[Path], columns: ColumnMap = MAP, *, require_label: bool = True) -> DataError:
    with pytest.raises(DataError) as info:
        load_tickets(paths, columns, require_label=require_label)
    return info.value


# --- canonical frame --------------------------------------------------------------------------------------


def test_csv_builds_the_canonical_frame(tmp_path: Path) -> None:
    result = load_tickets([_write(_source(), tmp_path / "t.csv")], MAP, require_label=True)
    frame = result.frame

    assert frame[TEXT].tolist() == [
        "Cannot log in\nPassword rejected.",
        "Parcel never arrived",
        "Refund",
        "Invoice\nCharged twice\nplease fix",
    ]
    assert frame[ID].tolist() == ["00123", "00124", "0099", "7"]
    assert frame[LABEL].tolist() == ["access", "shipping", "billing", "billing"]
    assert frame[PRIORITY].tolist() == ["high", "low", None, "medium"]
    assert frame[CHANNEL].tolist() == ["email", None, "chat", "web"]
    assert frame[TIER].tolist() == ["free", "premium", None, "enterprise"]
    assert frame[URGENCY].isna().all()
    assert str(frame[CREATED_AT].dtype) == "datetime64[ns, UTC]"
    assert frame[CREATED_AT].iloc[0] == pd.Timestamp("2025-03-01 09:15", tz="UTC")
    assert frame[CREATED_AT].iloc[1] == pd.Timestamp("2025-03-02 08:00", tz="UTC")  # +02:00 converted
    assert frame[CREATED_AT].iloc[2] == pd.Timestamp("2025-03-03", tz="UTC")  # naive taken as UTC
    assert pd.isna(frame[CREATED_AT].iloc[3])
    assert frame[SOURCE_ROW].tolist() == [1, 2, 3, 4]
    assert result.report.bad_timestamps == 0  # an empty timestamp is unknown, not unparseable
    assert any("no priority" in w and "row 3" in w for w in result.report.warnings)


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv.gz"])
def test_other_formats_give_the_same_frame_as_csv(tmp_path: Path, suffix: str) -> None:
    csv_frame = load_tickets([_write(_source(), tmp_path / "t.csv")], MAP, require_label=True).frame
    other = load_tickets([_write(_source(), tmp_path / f"t{suffix}")], MAP, require_label=True).frame

    pd.testing.assert_frame_equal(csv_frame.drop(columns=SOURCE), other.drop(columns=SOURCE))
    assert other[SOURCE].eq(str(tmp_path / f"t{suffix}")).all()


def test_jsonl_values_of_other_types_become_strings(tmp_path: Path) -> None:
    path = tmp_path / "t.ndjson"
    path.write_text(
        '{"subject": "Help", "body": null, "queue": 3, "ticket": 42}\n\n{"subject": "x", "queue": "a"}\n'
    )
    columns = ColumnMap(text=("subject", "body"), label="queue", id="ticket")

    frame = load_tickets([path], columns, require_label=True).frame

    assert frame[TEXT].tolist() == ["Help", "x"]
    assert frame[LABEL].tolist() == ["3", "a"]
    assert frame[ID].tolist() == ["42", None]
    assert frame[SOURCE_ROW].tolist() == [1, 3]  # line numbers: the blank line is skipped, not renumbered


def test_ids_keep_leading_zeros_and_an_unmapped_id_column_is_copied(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,text,label\n000123,hello,a\n0042,world,b\n")

    frame = load_tickets([path], ColumnMap(text=("text",), label="label"), require_label=True).frame

    assert frame[ID].tolist() == ["000123", "0042"]


def test_no_id_column_means_no_id_in_frame(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("ref,text,label\n0001,hello,a\n")

    frame = load_tickets([path], ColumnMap(text=("text",), label="label"), require_label=True).frame

    assert ID not in frame.columns


def test_byte_order_mark_does_not_rename_the_first_column(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("subject,label\r\nPrinter jam,hardware\r\n".encode("utf-8-sig"))

    frame = load_tickets([path], ColumnMap(text=("subject",), label="label"), require_label=True).frame

    assert frame[TEXT].tolist() == ["Printer jam"]


def test_rows_without_label_or_text_are_dropped_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("text,label\nfirst,a\n,b\nthird,\n   ,\nfifth,c\n")

    result = load_tickets([path], ColumnMap(text=("text",), label="label"), require_label=True)

    assert result.frame[TEXT].tolist() == ["first", "fifth"]
    assert result.frame[SOURCE_ROW].tolist() == [1, 5]
    (file_report,) = result.report.files
    assert file_report.rows_read == 5
    assert file_report.rows_kept == 2
    # Row 4 has neither: it is counted once, under the label.
    assert file_report.dropped == {DROP_EMPTY_LABEL: 2, DROP_EMPTY_TEXT: 1}
    assert any(DROP_EMPTY_LABEL in w and "rows 3, 4" in w for w in result.report.warnings)
    assert any(DROP_EMPTY_TEXT in w and "row 2" in w for w in result.report.warnings)


def test_without_require_label_unlabelled_rows_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("text,label\nfirst,a\nsecond,\n")

    result = load_tickets([path], ColumnMap(text=("text",), label="label"), require_label=False)

    assert result.frame[LABEL].tolist() == ["a", None]
    assert result.report.dropped == {}


def test_unparseable_timestamps_become_nat_and_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    rows = ["2025-01-05T10:00:00Z", "yesterday", "2025-01-07", "31/31/2025", "", "soon"]
    pd.DataFrame({"text": [f"t{i}" for i in range(6)], "label": "a", "ts": rows}).to_csv(path, index=False)

    result = load_tickets(
        [path], ColumnMap(text=("text",), label="label", timestamp="ts"), require_label=True
    )

    parsed = result.frame[CREATED_AT]
    assert parsed.isna().tolist() == [False, True, False, True, True, True]
    (file_report,) = result.report.files
    assert file_report.bad_timestamps == 3
    assert file_report.bad_timestamp_rows == (2, 4, 6)
    (warning,) = [w for w in result.report.warnings if "timestamp" in w]
    assert "'ts'" in warning and "rows 2, 4, 6" in warning and "'yesterday'" in warning


def test_several_files_are_concatenated_in_order(tmp_path: Path) -> None:
    first = tmp_path / "a.csv"
    first.write_text("subject,body,queue\nA1,x,q1\nA2,y,q2\n")
    second = _write(pd.DataFrame({"subject": ["B1"], "body": ["z"], "queue": ["q1"]}), tmp_path / "b.jsonl")
    columns = ColumnMap(text=("subject", "body"), label="queue")

    result = load_tickets([second, first], columns, require_label=True)

    assert result.frame[TEXT].tolist() == ["B1\nz", "A1\nx", "A2\ny"]
    assert result.frame[SOURCE].tolist() == [str(second), str(first), str(first)]
    assert result.frame[SOURCE_ROW].tolist() == [1, 1, 2]
    assert [f.rows_read for f in result.report.files] == [1, 2]
    assert result.report.rows_read == 3 and result.report.rows_kept == 3
    assert result.frame.index.tolist() == [0, 1, 2]


def test_extra_columns_are_copied_under_their_canonical_name(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("text,label,lang\nhello,a, en \n")
    columns = ColumnMap(text=("text",), label="label", extra={"language": "lang"})

    frame = load_tickets([path], columns, require_label=True).frame

    assert frame["language"].tolist() == ["en"]


@pytest.mark.parametrize(
    ("name", "columns"),
    [
        (
            "it_incidents_train.csv",
            ColumnMap(text=("short_description", "description"), label="assignment_group"),
        ),
        (
            "synthetic_tickets_v5_train.csv",
            ColumnMap(text=("subject", "body"), label="queue", priority="priority"),
        ),
    ],
)
def test_loads_the_first_rows_of_a_real_dataset(
    tmp_path: Path, datasets: Path, name: str, columns: ColumnMap
) -> None:
    real = datasets / name
    head = pd.read_csv(real, nrows=200, dtype=str, keep_default_na=False)
    head.to_csv(tmp_path / name, index=False)

    result = load_tickets([tmp_path / name], columns, require_label=True)

    frame = result.frame
    assert result.report.rows_read == 200
    assert len(frame) == result.report.rows_kept > 150
    assert frame[LABEL].notna().all()
    first = frame.iloc[0]
    raw = head.iloc[int(first[SOURCE_ROW]) - 1]
    assert first[TEXT].startswith(raw[columns.text[0]].strip())
    assert first[LABEL] == raw[columns.label].strip()


# --- errors -----------------------------------------------------------------------------------------------


def test_unknown_suffix_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tickets.xlsx"
    path.write_text("x")

    error = _error([path])

    assert error.file == str(path)
    assert str(path) in str(error) and ".csv" in str(error)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    error = _error([tmp_path / "nope.csv"])

    assert error.file == str(tmp_path / "nope.csv")
    assert "not found" in str(error) and "nope.csv" in str(error)


def test_unreadable_path_names_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "folder.csv"
    folder.mkdir()

    error = _error([folder])

    assert error.file == str(folder)
    assert "not a regular file" in str(error)


def test_non_utf8_csv_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("subject,body,queue\nGrüße,x,y\n".encode("latin-1"))

    error = _error([path])

    assert error.file == str(path)
    assert "UTF-8" in str(error)


@pytest.mark.parametrize("content", ["", "subject,body,queue\n"])
def test_empty_csv_names_the_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.csv"
    path.write_text(content)

    error = _error([path])

    assert error.file == str(path)
    assert "no data rows" in str(error)


def test_empty_jsonl_and_parquet_name_the_file(tmp_path: Path) -> None:
    jsonl = tmp_path / "empty.jsonl"
    jsonl.write_text("\n\n")
    parquet = _write(_source().iloc[:0], tmp_path / "empty.parquet")

    for path in (jsonl, parquet):
        error = _error([path])
        assert error.file == str(path)
        assert "no data rows" in str(error)


def test_missing_column_lists_the_available_ones(tmp_path: Path) -> None:
    path = _write(_source().drop(columns=["body"]), tmp_path / "t.csv")

    error = _error([path])

    assert error.column == "body"
    assert error.file == str(path)
    assert "'subject'" in str(error) and "'queue'" in str(error) and "'body'" in str(error)


def test_second_file_missing_a_column_is_the_one_named(tmp_path: Path) -> None:
    good = _write(_source(), tmp_path / "good.csv")
    bad = _write(_source().rename(columns={"queue": "category"}), tmp_path / "bad.csv")

    error = _error([good, bad])

    assert error.file == str(bad)
    assert error.column == "queue"
    assert "'category'" in str(error)


def test_label_column_entirely_empty(tmp_path: Path) -> None:
    path = _write(_source().assign(queue=["", " ", "", ""]), tmp_path / "t.csv")

    error = _error([path])

    assert error.column == "queue"
    assert error.file == str(path)
    assert "entirely empty" in str(error)


def test_all_text_columns_empty_in_every_row(tmp_path: Path) -> None:
    path = _write(_source().assign(subject="", body=" "), tmp_path / "t.csv")

    error = _error([path])

    assert error.column == "subject,body"
    assert error.file == str(path)
    assert "empty text" in str(error)


def test_label_required_but_not_mapped(tmp_path: Path) -> None:
    path = _write(_source(), tmp_path / "t.csv")

    error = _error([path], ColumnMap(text=("subject",)), require_label=True)

    assert "label" in str(error)


def test_malformed_jsonl_line_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"subject": "a", "queue": "x"}\n{"subject": "b", "queue": "y"}\n{"subject": "c", \n')

    error = _error([path], ColumnMap(text=("subject",), label="queue"))

    assert error.file == str(path)
    assert error.row == 3
    assert "row 3" in str(error) and "JSON" in str(error)


def test_jsonl_line_that_is_not_an_object_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"subject": "a", "queue": "x"}\n["b", "y"]\n')

    error = _error([path], ColumnMap(text=("subject",), label="queue"))

    assert error.row == 2
    assert "object" in str(error)


def test_malformed_csv_row_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("subject,queue\na,x\nb,y\nc,z,surplus\n")

    error = _error([path], ColumnMap(text=("subject",), label="queue"))

    assert error.file == str(path)
    assert error.row == 3
    assert "row 3" in str(error)


def test_corrupt_parquet_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    path.write_text("this is not parquet")

    error = _error([path])

    assert error.file == str(path)
    assert "Parquet" in str(error)


def test_no_paths_is_an_error() -> None:
    with pytest.raises(DataError, match="no input files"):
        load_tickets([], MAP, require_label=True)


def test_parse_columns() -> None:
    assert parse_columns("subject,body") == ("subject", "body")
    assert parse_columns(" subject , body ") == ("subject", "body")
    assert parse_columns('"Consumer complaint, narrative",title') == (
        "Consumer complaint, narrative",
        "title",
    )
    for bad in ("", "subject,,body", "subject,", " , "):
        with pytest.raises(ValueError, match="empty"):
            parse_columns(bad)
    with pytest.raises(ValueError, match="more than once"):
        parse_columns("body,body")


def test_data_error_message_composes_location() -> None:
    error = DataError("is bad", file="x.csv", column="body", row=7)

    assert str(error) == "file x.csv, column 'body', row 7: is bad"
    assert isinstance(error, ValueError)
    assert str(DataError("is bad")) == "is bad"


# --- splits -----------------------------------------------------------------------------------------------


def _labels() -> np.ndarray:
    counts = {"access": 120, "billing": 80, "shipping": 41, "security": 9, "tiny": 3, "single": 1, "pair": 2}
    labels = np.array([c for c, n in counts.items() for _ in range(n)], dtype=object)
    return np.random.default_rng(0).permutation(labels)


def _split(labels: np.ndarray | pd.Series, **overrides: float) -> Splits:
    kwargs = {
        "validation_fraction": 0.1,
        "test_fraction": 0.1,
        "min_rows_per_class": 3,
        "seed": 13,
    } | overrides
    return split_frame(labels, **kwargs)


def test_same_seed_same_splits_and_another_seed_differs() -> None:
    labels = _labels()
    a, b, c = _split(labels), _split(pd.Series(labels)), _split(labels, seed=14)

    for name in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.validation, c.validation)


def test_splits_are_disjoint_and_cover_every_row_of_kept_classes() -> None:
    labels = _labels()
    splits = _split(labels)

    parts = [set(splits.train), set(splits.validation), set(splits.test)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    kept = {i for i, label in enumerate(labels) if label not in ("single", "pair")}
    assert parts[0] | parts[1] | parts[2] == kept
    assert all(np.all(np.diff(getattr(splits, n)) > 0) for n in ("train", "validation", "test"))


def test_splits_are_stratified() -> None:
    labels = _labels()
    splits = _split(labels, validation_fraction=0.2, test_fraction=0.15)

    n_kept = int(np.isin(labels, ["access", "billing", "shipping", "security", "tiny"]).sum())
    assert len(splits.validation) == round(n_kept * 0.2)
    assert len(splits.test) == round(n_kept * 0.15)
    for label in ("access", "billing", "shipping", "security"):
        n = int((labels == label).sum())
        assert abs(int((labels[splits.validation] == label).sum()) - n * 0.2) < 1
        assert abs(int((labels[splits.test] == label).sum()) - n * 0.15) < 1


def test_rare_classes_are_left_out_and_reported() -> None:
    labels = _labels()
    splits = _split(labels)

    assert splits.rare == {"pair": 2, "single": 1}
    everything = np.concatenate([splits.train, splits.validation, splits.test])
    assert not np.isin(labels[everything], ["pair", "single"]).any()
    report = splits.rare_report()
    assert len(report) == 2
    assert "'pair'" in report[0] and "2 row" in report[0]
    assert "'single'" in report[1] and "1 row" in report[1]


def test_small_classes_keep_training_rows_without_crashing() -> None:
    # 3 rows with 40 % held out each side: the class cannot appear in every split.
    labels = np.array(["big"] * 50 + ["tiny"] * 3 + ["two"] * 2, dtype=object)
    splits = _split(labels, validation_fraction=0.4, test_fraction=0.4, min_rows_per_class=2)

    for label in ("big", "tiny", "two"):
        assert (labels[splits.train] == label).sum() >= 1
    assert (labels[splits.validation] == "two").sum() == 1
    assert (labels[splits.test] == "two").sum() == 0
    assert any("'two'" in note and "test" in note for note in splits.notes)
    assert not any("'big'" in note for note in splits.notes)


def test_zero_test_fraction_gives_no_test_split() -> None:
    labels = _labels()
    splits = _split(labels, test_fraction=0.0)

    assert len(splits.test) == 0
    assert len(splits.validation) > 0
    assert not any("test" in note for note in splits.notes)


@pytest.mark.parametrize(
    "overrides",
    [
        {"validation_fraction": 1.0},
        {"test_fraction": -0.1},
        {"validation_fraction": 0.6, "test_fraction": 0.4},
        {"min_rows_per_class": 0},
    ],
)
def test_bad_split_arguments_are_rejected(overrides: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        _split(_labels(), **overrides)


def test_split_rejects_missing_labels_and_a_single_class() -> None:
    with pytest.raises(ValueError, match="position 2"):
        _split(np.array(["a", "b", None, "a", "b", "a"], dtype=object))
    with pytest.raises(ValueError, match="two"):
        _split(np.array(["a"] * 10 + ["b"], dtype=object))


# --- fingerprint ------------------------------------------------------------------------------------------


def test_fingerprint_follows_content_and_order_but_not_provenance(tmp_path: Path) -> None:
    frame = load_tickets([_write(_source(), tmp_path / "t.csv")], MAP, require_label=True).frame
    again = load_tickets([_write(_source(), tmp_path / "t.parquet")], MAP, require_label=True).frame
    base = fingerprint(frame)

    assert len(base) == 64
    assert fingerprint(again) == base  # same tickets from another file and format
    assert fingerprint(frame.assign(id=["x"] * 4)) == base
    assert fingerprint(frame.iloc[::-1]) != base
    assert fingerprint(frame.assign(label=["access", "shipping", "billing", "access"])) != base
    assert fingerprint(frame.assign(priority=["high", "low", "low", "medium"])) != base
    assert fingerprint(frame.assign(channel=[None, None, "chat", "web"])) != base
    shifted = frame.assign(created_at=frame[CREATED_AT] + pd.Timedelta(seconds=1))
    assert fingerprint(shifted) != base
    assert fingerprint(frame.drop(columns=PRIORITY)) != base
    assert base != fingerprint(frame.assign(text=frame[TEXT] + " "))
    # Cell boundaries matter: moving text between rows changes the hash.
    moved = frame.copy()
    moved.loc[0, TEXT], moved.loc[1, TEXT] = frame.loc[0, TEXT] + "\n" + frame.loc[1, TEXT], ""
    assert fingerprint(moved) != base
