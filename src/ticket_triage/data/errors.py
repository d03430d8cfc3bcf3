"""One error type for bad input data, so the CLI can show the user exactly where to look."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Input data that cannot be used; names the file, column and 1-based data row when known."""

    def __init__(
        self,
        reason: str,
        *,
        file: str | Path | None = None,
        column: str | None = None,
        row: int | None = None,
    ) -> None:
        self.reason = reason
        self.file = None if file is None else str(file)
        self.column = column
        self.row = row
        super().__init__(self._compose())

    def _compose(self) -> str:
        where = []
        if self.file is not None:
            where.append(f"file {self.file}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        if self.row is not None:
            where.append(f"row {self.row}")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason
