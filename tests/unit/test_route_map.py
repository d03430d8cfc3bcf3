"""The route map: parsed and checked up front, so a typo cannot silently send tickets to review."""

from __future__ import annotations

from pathlib import Path

import pytest

from ticket_triage.route_map import RouteMap, RouteMapError, load_route_map
from ticket_triage.routing import mapped_route

LABELS = ["Billing and Payments", "Technical Support", "Returns"]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routes.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_system_table_wins_and_the_default_is_the_fallback(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[default]\n"Billing and Payments" = "billing"\n"Returns" = "returns"\n'
        '[zendesk]\n"Billing and Payments" = 360001234567\n',
    )
    routes = load_route_map(path)
    assert routes is not None
    assert routes.queue_for("zendesk", "Billing and Payments") == "360001234567"
    assert routes.queue_for("zendesk", "Returns") is None  # zendesk's own table names no Returns
    assert routes.queue_for("jira", "Returns") == "returns"
    assert routes.queue_for("default", "Technical Support") is None
    assert routes.check_labels(LABELS) == ["Returns", "Technical Support"]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[helpscout]\n"Returns" = "r"\n', "unknown table(s) helpscout"),
        ('[default]\n"Returns" = true\n', "'Returns' must map to a string or integer id"),
        ('[default]\n"Returns" = "  "\n', "'Returns' needs an id of 1 to 200 characters"),
        ("[default]\n", "maps no label"),
        ('default = "x"\n', "[default] must be a table"),
        ("[default\n", "not valid TOML"),
    ],
)
def test_a_bad_file_is_refused_by_what_is_wrong(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(RouteMapError) as caught:
        RouteMap.load(_write(tmp_path, text))
    assert named in str(caught.value) and "routes.toml" in str(caught.value)


def test_a_label_the_model_does_not_have_stops_start_up() -> None:
    routes = RouteMap.parse({"jira": {"Billing & Payments": "10"}}, "routes.toml")
    with pytest.raises(
        RouteMapError, match=r"\[jira\] maps label\(s\) the model does not have: 'Billing & Pay"
    ):
        routes.check_labels(LABELS)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(RouteMapError, match="cannot be read"):
        RouteMap.load(tmp_path / "nope.toml")


def test_only_mapped_labels_may_leave_as_a_route() -> None:
    assert mapped_route("auto", None, map_in_force=True) == "review"
    assert mapped_route("auto", "billing", map_in_force=True) == "auto"
    assert mapped_route("review", "billing", map_in_force=True) == "review"
    assert mapped_route("auto", None, map_in_force=False) == "auto"
