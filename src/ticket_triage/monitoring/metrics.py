"""Prometheus metrics of the service, registered on a registry the app owns so tests can run several apps."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Breaker state as a number, so a dashboard can plot it and an alert can compare it.
BREAKER_STATE_VALUES = {"closed": 0.0, "half-open": 1.0, "open": 2.0}

# Request latencies are a few ms (cached) to a few hundred ms (large batches).
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


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
            "Tickets predicted, by category and route.",
            ["category", "route"],
            registry=r,
        )
        self.cache_lookups = Counter(
            "triage_cache_lookups",
            "Cache lookups per ticket: hit, miss, or skipped (cache unavailable).",
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
            "triage_cache_breaker_state", "Redis circuit breaker: 0 closed, 1 half-open, 2 open.", registry=r
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
        self.durable_records = Counter(
            "triage_durable_records",
            "Audit records and review items by outcome: written, spooled (database unreachable), replayed"
            " from the spool, and failed write attempts.",
            ["outcome"],
            registry=r,
        )
        self.spool_pending = Gauge(
            "triage_spool_pending", "1 while records wait in the local spool for the database.", registry=r
        )
        self.model_reloads = Counter(
            "triage_model_reloads", "Hot reload attempts, by outcome.", ["outcome"], registry=r
        )

    def set_breaker_state(self, state: str) -> None:
        self.breaker_state.set(BREAKER_STATE_VALUES.get(state, -1.0))
        self.breaker_transitions.labels(state=state).inc()
