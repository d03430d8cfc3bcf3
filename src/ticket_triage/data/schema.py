"""The canonical ticket frame every other module reads, whatever the source file called its columns."""

from __future__ import annotations

from dataclasses import dataclass, field

# Canonical column names of a ticket frame (a pandas DataFrame).
TEXT = "text"  # all mapped text columns joined with TEXT_JOINER; always a str, maybe ""
LABEL = "label"  # category (training/evaluation only)
PRIORITY = "priority"  # optional second target
CREATED_AT = "created_at"  # datetime64[ns, UTC]; NaT when unknown
CHANNEL = "channel"  # str or None
TIER = "customer_tier"  # str or None
URGENCY = "urgency"  # declared urgency, str or None
ID = "id"  # copied through to predictions when present

METADATA_COLUMNS = (CHANNEL, TIER, URGENCY)
TEXT_JOINER = "\n"
#: Joins a list of labels in one CSV cell: prediction sets and tags in `triage predict`, tags in the review
#: export and in corrections read back. "|" is rare in queue and tag names.
LIST_SEPARATOR = "|"


@dataclass(frozen=True)
class ColumnMap:
    """Which source columns hold which canonical field; None means absent."""

    text: tuple[str, ...]
    label: str | None = None
    priority: str | None = None
    timestamp: str | None = None
    channel: str | None = None
    tier: str | None = None
    urgency: str | None = None
    id: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def source_columns(self) -> dict[str, str]:
        """Canonical name -> source column for every mapped scalar field."""
        pairs = {
            LABEL: self.label,
            PRIORITY: self.priority,
            CREATED_AT: self.timestamp,
            CHANNEL: self.channel,
            TIER: self.tier,
            URGENCY: self.urgency,
            ID: self.id,
        }
        return {k: v for k, v in pairs.items() if v}
