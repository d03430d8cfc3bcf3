"""`triage drift-report`: an Evidently report of a ticket file against the bundle's training sample."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
from typer.testing import CliRunner

from ticket_triage.cli import app

runner = CliRunner()


def _over_025(output: str) -> int:
    match = re.search(r"over 0\.25: (\d+) of (\d+)", output)
    assert match, output
    return int(match[1])


def test_drift_report_tells_unseen_tickets_of_the_same_kind_from_another_kind(
    trained: Any, synthetic_split: tuple[Path, Path], datasets: Path, tmp_path: Path
) -> None:
    shifted = tmp_path / "banking.csv"
    pd.read_csv(datasets / "banking77_train.csv").sample(300, random_state=2).rename(
        columns={"text": "body"}
    ).assign(subject="").to_csv(shifted, index=False)

    def report(data: Path, name: str) -> Any:
        args = ["drift-report", "--model", str(trained.path), "--text", "subject,body"]
        return runner.invoke(app, [*args, "--data", str(data), "--out", str(tmp_path / name)])

    same = report(synthetic_split[1], "same.html")
    other = report(shifted, "other.html")
    print(f"\nheld-out synthetic tickets: {same.output}\nBANKING77 queries: {other.output}")
    assert same.exit_code == 0 and other.exit_code == 0
    assert _over_025(other.output) > _over_025(same.output)
    html = (tmp_path / "other.html").read_text()
    assert len(html) > 100_000 and "<html" in html[:2000].lower()


def test_drift_report_names_what_is_missing(trained: Any, tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("subject,body\n")
    result = runner.invoke(
        app,
        [
            "drift-report",
            "--model",
            str(trained.path),
            "--data",
            str(empty),
            "--out",
            str(tmp_path / "r.html"),
        ],
    )
    assert result.exit_code == 2
    assert "error:" in result.output and "Traceback" not in result.output
    missing = runner.invoke(
        app, ["drift-report", "--model", str(tmp_path / "nope"), "--data", str(empty), "--out", "x.html"]
    )
    assert missing.exit_code == 2 and "nope" in missing.output
