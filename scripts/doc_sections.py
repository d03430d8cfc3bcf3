"""Each benchmark script owns one marked section of docs/benchmarks.md, so re-running one keeps the others."""

from __future__ import annotations

import re
from pathlib import Path

TITLE = "# Benchmarks\n"


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def replace_section(doc: Path, name: str, body: str) -> None:
    """Put ``body`` between the ``name`` markers of ``doc``, appending the section if it is new."""
    start, end = _markers(name)
    block = f"{start}\n{body.strip()}\n{end}\n"
    text = doc.read_text(encoding="utf-8") if doc.exists() else TITLE
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text, encoding="utf-8")
