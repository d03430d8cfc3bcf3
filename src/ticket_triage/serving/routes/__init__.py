"""One router per resource; ``ticket_triage.serving.app`` joins them."""
