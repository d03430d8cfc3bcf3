"""Ticket Triage: classify helpdesk tickets into a queue and a priority, with calibrated confidence."""

__version__ = "0.1.0"
