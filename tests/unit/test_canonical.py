"""The canonical ticket: one rule for the model's input and its key, shared by the CLI and the service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from ticket_triage.data.canonical import input_digest, model_inputs, review_key, tickets_frame
from ticket_triage.data.loader import load_tickets
from ticket_triage.data.schema import TEXT, ColumnMap
from ticket_triage.features.base import normalize_whitespace
from ticket_triage.features.readability import ReadabilityFeatures
from ticket_triage.features.temporal import TemporalFeatures
from ticket_triage.serving.schemas import Ticket

WORDS = "My card was declined at the shop this morning I need help"


def _digest(ticket: Ticket) -> str:
    [fields] = model_inputs([ticket])
    return input_digest(fields)


def _readability(tickets: list[Ticket]) -> np.ndarray:
    frame = normalize_whitespace(tickets_frame(tickets))
    return ReadabilityFeatures().fit(frame).transform(frame)


def test_a_line_break_the_model_reads_is_a_different_key() -> None:
    one_line = Ticket(subject="Card declined", description=WORDS)
    broken = Ticket(subject="Card declined", description=WORDS.replace(" this ", "\nthis "))
    features = _readability([one_line, broken])
    assert not np.array_equal(features[0], features[1])  # the model tells them apart...
    assert _digest(one_line) != _digest(broken)  # ...so the key does


def test_whitespace_the_pipeline_collapses_shares_a_key_and_the_features() -> None:
    """Runs of spaces and blank lines are normalised away before any family reads the text."""
    plain = Ticket(subject="Card declined", description=WORDS)
    spaced = Ticket(subject="  Card   declined ", description=WORDS.replace(" at ", " \t at  ") + "  \n\n")
    features = _readability([plain, spaced])
    assert np.array_equal(features[0], features[1])
    assert _digest(plain) == _digest(spaced)


def test_the_line_break_between_subject_and_description_counts_too() -> None:
    """Subject and description are joined by a line break: a ticket with both is another input than one
    with the same words as a subject alone (the old key, all whitespace collapsed, gave them one entry)."""
    a = Ticket(subject="Card declined", description="please help")
    b = Ticket(subject="Card declined please help")
    assert not np.array_equal(*_readability([a, b]))
    assert _digest(a) != _digest(b)


def test_the_key_keeps_the_minute_the_temporal_family_reads() -> None:
    base = datetime(2026, 3, 3, 9, 15, tzinfo=UTC)
    times = [base, base + timedelta(minutes=30), base + timedelta(seconds=40)]
    tickets = [Ticket(subject="VPN drops", created_at=t) for t in times]
    temporal = TemporalFeatures().transform(tickets_frame(tickets))
    assert not np.array_equal(temporal[0], temporal[1]) and _digest(tickets[0]) != _digest(tickets[1])
    assert np.array_equal(temporal[0], temporal[2]) and _digest(tickets[0]) == _digest(tickets[2])
    same_instant = Ticket(subject="VPN drops", created_at=base.astimezone(timezone(timedelta(hours=2))))
    assert _digest(same_instant) == _digest(tickets[0])


def test_fields_the_model_never_reads_stay_out_of_the_key() -> None:
    base = Ticket(subject="VPN drops", channel="email", customer_tier="gold", urgency="high")
    other = base.model_copy(update={"ticket_id": "HD-9", "language": "de", "metadata": {"crm": 1}})
    assert _digest(base) == _digest(other)
    for change in ({"channel": "chat"}, {"customer_tier": "free"}, {"urgency": "low"}):
        assert _digest(base.model_copy(update=change)) != _digest(base)


def test_review_key_is_per_model_version() -> None:
    [fields] = model_inputs([Ticket(subject="VPN drops")])
    assert review_key("m1", fields) == review_key("m1", dict(reversed(fields.items())))
    assert review_key("m1", fields) != review_key("m2", fields)
    assert len(review_key("m1", fields)) == 64


def test_the_cli_and_the_service_join_subject_and_description_alike(tmp_path: Path) -> None:
    rows = pd.DataFrame(
        {
            "subject": ["  Cannot log in ", "", "Refund", "Invoice\n"],
            "body": ["Password rejected.", "Parcel never\n\narrived ", "  ", "  Charged twice\nplease fix"],
        }
    )
    path = tmp_path / "tickets.csv"
    rows.to_csv(path, index=False)
    from_file = load_tickets([path], ColumnMap(text=("subject", "body")), require_label=False).frame
    served = tickets_frame(
        [Ticket(subject=s or None, description=b) for s, b in zip(rows["subject"], rows["body"], strict=True)]
    )
    assert from_file[TEXT].tolist() == served[TEXT].tolist()
    assert served[TEXT].tolist()[3] == "Invoice\nCharged twice\nplease fix"
