"""The ``triage`` command as a package of command modules: the entry point, ``python -m`` and a command
group end to end (keys, which needs no model)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from importlib import import_module
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = [
    "train",
    "predict",
    "evaluate",
    "drift-report",
    "demo",
    "retrain",
    "compare",
    "promote",
    "serve",
    "consume",
    "keys",
    "dead-letter",
]


def _entry_point_app() -> typer.Typer:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    module, _, name = scripts["triage"].partition(":")
    return getattr(import_module(module), name)


def test_the_entry_point_names_every_command_in_order() -> None:
    command = typer.main.get_command(_entry_point_app())
    assert list(command.commands) == COMMANDS
    assert sorted(command.commands["keys"].commands) == ["add", "list"]
    assert sorted(command.commands["dead-letter"].commands) == ["list", "requeue"]


def test_python_dash_m_runs_the_same_command() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "ticket_triage.cli", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    listed = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("│ ") and "  " in line]
    assert [name for name in listed if name in COMMANDS] == COMMANDS


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in ("API_KEYS", "API_KEY_FILE", "VAR_DIR"):
        monkeypatch.delenv(f"TRIAGE_{name}", raising=False)
    monkeypatch.setenv("TRIAGE_VAR_DIR", str(tmp_path / "var"))
    return CliRunner()


def test_keys_add_then_list_through_the_var_dir(runner: CliRunner, tmp_path: Path) -> None:
    app = _entry_point_app()
    added = runner.invoke(app, ["keys", "add", "--name", "alice", "--role", "Review"])
    assert added.exit_code == 0, added.output
    key = added.stdout.strip()
    assert len(key) >= 20 and key not in (tmp_path / "var" / "api_keys.json").read_text(encoding="utf-8")
    listed = runner.invoke(app, ["keys", "list"])
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines() == ["alice\treview"]


def test_a_bad_role_ends_with_the_error_line_and_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(_entry_point_app(), ["keys", "add", "--name", "bob", "--role", "root"])
    assert result.exit_code == 2
    assert "error: --role must be predict, review or admin, not 'root'" in result.stderr
    assert not (tmp_path / "var" / "api_keys.json").exists()
