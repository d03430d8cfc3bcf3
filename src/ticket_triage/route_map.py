"""The route map: which of the helpdesk's own groups or queues each model label stands for.

A TOML file (``TRIAGE_ROUTE_MAP_FILE``), one table per destination, each mapping a model label to the
helpdesk's id for it::

    [default]                       # /predict, /predict/batch and the broker
    "Billing and Payments" = "billing"

    [zendesk]                       # tickets from that system's webhook; falls back to [default]
    "Billing and Payments" = 360001234567

With a map in force, a label without a mapping is never sent out as a route: the ticket goes to review
(:func:`ticket_triage.routing.mapped_route`). Checked when the service starts: a label the model does not
know is an error (a typo would silently send those tickets to review), a model label no table maps is a
warning.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_TABLE = "default"
#: Tables a map may have: the default and one per helpdesk integration.
TABLES = (DEFAULT_TABLE, "zendesk", "freshdesk", "jira", "zammad")
_MAX_ID = 200


class RouteMapError(ValueError):
    """The file cannot be used; the message names the file and what is wrong in it."""


@dataclass(frozen=True)
class RouteMap:
    tables: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    source: str = "<memory>"

    @classmethod
    def load(cls, path: Path) -> RouteMap:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise RouteMapError(f"route map {path}: cannot be read ({exc.strerror or exc})") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise RouteMapError(f"route map {path}: not valid TOML ({exc})") from exc
        return cls.parse(raw, str(path))

    @classmethod
    def parse(cls, raw: Mapping[str, object], source: str = "<memory>") -> RouteMap:
        unknown = sorted(set(raw) - set(TABLES))
        if unknown:
            raise RouteMapError(
                f"route map {source}: unknown table(s) {', '.join(unknown)}; allowed: {', '.join(TABLES)}"
            )
        tables: dict[str, dict[str, str]] = {}
        for name, table in raw.items():
            if not isinstance(table, dict):
                raise RouteMapError(f"route map {source}: [{name}] must be a table of label = id")
            mapped: dict[str, str] = {}
            for label, queue in table.items():
                if isinstance(queue, bool) or not isinstance(queue, str | int):
                    raise RouteMapError(
                        f"route map {source}: [{name}] {label!r} must map to a string or integer id"
                    )
                queue_id = str(queue).strip()
                if not queue_id or len(queue_id) > _MAX_ID:
                    raise RouteMapError(
                        f"route map {source}: [{name}] {label!r} needs an id of 1 to {_MAX_ID} characters"
                    )
                mapped[label] = queue_id
            tables[name] = mapped
        if not any(tables.values()):
            raise RouteMapError(f"route map {source}: maps no label; every ticket would go to review")
        return cls(tables, source)

    def table(self, destination: str) -> Mapping[str, str]:
        """The labels of one destination: its own table, else the default one."""
        return self.tables.get(destination) or self.tables.get(DEFAULT_TABLE) or {}

    def queue_for(self, destination: str, label: str) -> str | None:
        return self.table(destination).get(label)

    def check_labels(self, labels: Iterable[str]) -> list[str]:
        """Refuse labels the model does not have; returns the model labels some destination leaves
        unmapped (their tickets go to review there), logged as a warning."""
        known = set(labels)
        for name, table in self.tables.items():
            strangers = sorted(set(table) - known)
            if strangers:
                raise RouteMapError(
                    f"route map {self.source}: [{name}] maps label(s) the model does not have:"
                    f" {', '.join(map(repr, strangers))}"
                )
        unmapped = sorted({label for name in self.tables for label in known if label not in self.table(name)})
        if unmapped:
            log.warning(
                "route map %s leaves %d label(s) unmapped somewhere; their tickets go to review there: %s",
                self.source,
                len(unmapped),
                ", ".join(unmapped[:20]) + (" ..." if len(unmapped) > 20 else ""),
            )
        return unmapped


def load_route_map(path: Path | None) -> RouteMap | None:
    return None if path is None else RouteMap.load(path)
