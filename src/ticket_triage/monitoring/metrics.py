"""Prometheus metrics of the service, registered on a registry the app owns so tests can run several apps.

With several worker processes, ``triage serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before the workers start:
prometheus_client then keeps every value in a memory-mapped file per process, and ``/metrics`` (answered
by whichever worker) adds the counters up across all of them. Gauges say how to combine workers: ``max``
for states (any worker's open breaker counts), ``mostrecent`` for values every worker computes alike
(queue depth, agreement, drift).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

#: Breaker state as a number, so a dashboard can plot it and an alert can compare it.
BREAKER_STATE_VALUES = {"closed": 0.0, "half-open": 1.0, "open": 2.0}

# Request latencies are a few ms (cached) to a few hundred ms (large batches).
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# Finer near the top, where the routing threshold usually sits.
_CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 1.0)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class ServiceMetrics:
    """The service's own metrics; the monitoring issue adds drift and review gauges beside them."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "triage_http_requests",
            "HTTP requests answered, by route and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "triage_http_request_duration_seconds",
            "Time to answer an HTTP request, by route and status.",
            ["route", "method", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "triage_predictions",
            "Tickets predicted, by category, priority (empty when the model has none) and route.",
            ["category", "priority", "route"],
            registry=r,
        )
        self.confidence = Histogram(
            "triage_prediction_confidence",
            "Calibrated confidence of each answer's category.",
            buckets=_CONFIDENCE_BUCKETS,
            registry=r,
        )
        self.explain_seconds = Histogram(
            "triage_explain_seconds",
            "Time to explain one answer (?explain=true): the model over masked copies of the ticket.",
            buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0),
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "triage_webhook_deliveries",
            "Helpdesk webhook calls by system and outcome: answered, unauthorized (bad or missing signature)"
            " or invalid (a payload that is not that system's ticket).",
            ["system", "outcome"],
            registry=r,
        )
        self.ticket_answers = Counter(
            "triage_ticket_answers",
            "Tickets with an id, by what the ticket ledger did: new (first answer of this version),"
            " replayed (a retried delivery got its first answer again) or ledger_error (database down).",
            ["result"],
            registry=r,
        )
        # Both label sets are small and known: export them at 0 from the start, so a dashboard shows "none
        # refused" rather than "no data" and rate() sees the first refusal.
        for system in ("zendesk", "freshdesk", "jira", "zammad"):
            for outcome in ("answered", "unauthorized", "invalid"):
                self.webhook_deliveries.labels(system=system, outcome=outcome)
        for result in ("new", "replayed", "ledger_error"):
            self.ticket_answers.labels(result=result)
        self.cache_lookups = Counter(
            "triage_cache_lookups",
            "Cache lookups per ticket: hit, miss, rejected (a stored value not signed by us or not scores), "
            "or skipped (cache unavailable).",
            ["backend", "result"],
            registry=r,
        )
        self.cache_errors = Counter(
            "triage_cache_errors",
            "Cache calls that failed or timed out, by operation.",
            ["backend", "operation"],
            registry=r,
        )
        self.breaker_state = Gauge(
            "triage_cache_breaker_state",
            "Redis circuit breaker: 0 closed, 1 half-open, 2 open.",
            registry=r,
            multiprocess_mode="max",
        )
        self.breaker_transitions = Counter(
            "triage_cache_breaker_transitions",
            "Circuit breaker state changes, by new state.",
            ["state"],
            registry=r,
        )
        self.batch_size = Histogram(
            "triage_inference_batch_size",
            "Tickets per vectorised model pass.",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "triage_inference_duration_seconds",
            "Time of one vectorised model pass.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.failed_tickets = Counter(
            "triage_inference_failed_tickets",
            "Tickets the model failed on; a failing pass is rerun so only the job holding one fails.",
            registry=r,
        )
        self.durable_records = Counter(
            "triage_durable_records",
            "Audit records and review items by outcome: written, spooled (database unreachable), replayed"
            " from the spool, dead_lettered (refused by the database on their own), failed write attempts,"
            " and refused calls (spool full).",
            ["outcome"],
            registry=r,
        )
        self.spool_pending = Gauge(
            "triage_spool_pending",
            "1 while records wait in the local spool for the database.",
            registry=r,
            multiprocess_mode="max",
        )
        self.dead_letters = Counter(
            "triage_dead_letter",
            "Records moved to the dead-letter store because no database would take them, by kind"
            " (audit, review, notify, unknown for a spool line that is not JSON).",
            ["kind"],
            registry=r,
        )
        for kind in ("audit", "review", "notify", "unknown"):  # a series from the start: the first counts
            self.dead_letters.labels(kind=kind)
        self.spool_full = Gauge(
            "triage_spool_full",
            "1 while the spool cannot be written and the database is down: new work is refused (503).",
            registry=r,
            multiprocess_mode="max",
        )
        # --- the outbound notifier (notify/) ---
        self.notifications = Counter(
            "triage_notifications",
            "Notification attempts by outcome: delivered (2xx), retried (network error, timeout, 408, 425,"
            " 429 or 5xx; tried again later) or dead_lettered (refused, or out of attempts).",
            ["outcome"],
            registry=r,
        )
        for outcome in ("delivered", "retried", "dead_lettered"):
            self.notifications.labels(outcome=outcome)
        self.notification_pending = Gauge(
            "triage_notification_pending",
            "Decisions in the outbox not yet delivered nor dead (every worker counts the shared table).",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.notification_seconds = Histogram(
            "triage_notification_seconds",
            "Time of one notification attempt, from sending to the receiver's answer (or the failure).",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=r,
        )
        self.model_reloads = Counter(
            "triage_model_reloads", "Hot reload attempts, by outcome.", ["outcome"], registry=r
        )
        self.models_loaded = Gauge(
            "triage_models_loaded",
            "Models in memory: 1, or 2 while a swapped-out model finishes its last requests.",
            registry=r,
            multiprocess_mode="max",
        )

        # --- the model and its reviewers ---
        self.model_info = Gauge(
            "triage_model_info",
            "1 for the model version serving now (0 for one swapped out).",
            ["version", "trained_at"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.review_share_baseline = Gauge(
            "triage_model_review_share_baseline",
            "Share of held-out tickets the serving model routed to review when it was trained.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.review_queue_depth = Gauge(
            "triage_review_queue_depth",
            "Review items by status (pending, claimed).",
            ["status"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.reviews_resolved = Counter(
            "triage_reviews_resolved",
            "Review items resolved, by whether the reviewer agreed with the model's category.",
            ["agreed"],
            registry=r,
        )
        self.review_agreement = Gauge(
            "triage_review_agreement_ratio",
            "The model's agreement with reviewers over the most recent resolutions.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        # --- drift (PSI of the recent window against the bundle's training reference) ---
        self.drift_psi = Gauge(
            "triage_drift_psi",
            "Population stability index of a monitored feature.",
            ["feature"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.prediction_drift_psi = Gauge(
            "triage_prediction_drift_psi",
            "PSI of the predicted category distribution.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.confidence_drift_psi = Gauge(
            "triage_confidence_drift_psi",
            "PSI of the confidence distribution.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.drift_features_over = Gauge(
            "triage_drift_features_over",
            "How many monitored features have a PSI over the threshold.",
            ["threshold"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.drift_window_size = Gauge(
            "triage_drift_window_size",
            "Tickets in the window the drift gauges were computed on.",
            registry=r,
            multiprocess_mode="mostrecent",
        )

    def exposition(self) -> tuple[bytes, str]:
        """The text for ``/metrics``: this process's registry, or every worker's values combined."""
        directory = os.environ.get(MULTIPROC_ENV)
        if directory:
            combined = CollectorRegistry()
            MultiProcessCollector(combined, path=directory)
            return generate_latest(combined), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def set_model(self, version: str, trained_at: str | None, review_share: float | None) -> None:
        """Point ``triage_model_info`` at the serving version, with its trained review share."""
        self.model_info.labels(version=version, trained_at=trained_at or "").set(1)
        if review_share is not None:
            self.review_share_baseline.set(review_share)

    def retire_model(self, version: str, trained_at: str | None) -> None:
        self.model_info.labels(version=version, trained_at=trained_at or "").set(0)

    def set_breaker_state(self, state: str) -> None:
        self.breaker_state.set(BREAKER_STATE_VALUES.get(state, -1.0))
        self.breaker_transitions.labels(state=state).inc()
