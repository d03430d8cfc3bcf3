"""Helpdesk webhook adapters: each system's own payload and authentication, in and out as one Ticket.

One module per system, each with an ``ADAPTER``; :data:`ADAPTERS` is what the webhook route looks up by
the path's system name.
"""

from __future__ import annotations

from ticket_triage.integrations import freshdesk, jira, zammad, zendesk
from ticket_triage.integrations.base import Adapter

ADAPTERS: dict[str, Adapter] = {
    zendesk.SYSTEM: zendesk.ADAPTER,
    freshdesk.SYSTEM: freshdesk.ADAPTER,
    jira.SYSTEM: jira.ADAPTER,
    zammad.SYSTEM: zammad.ADAPTER,
}


def adapters(*, replay_seconds: float) -> dict[str, Adapter]:
    """The adapters with the operator's settings: Zendesk's replay window is ``webhook_replay_seconds``."""
    return {**ADAPTERS, zendesk.SYSTEM: zendesk.ZendeskAdapter(replay_seconds=replay_seconds)}


__all__ = ["ADAPTERS", "Adapter", "adapters"]
