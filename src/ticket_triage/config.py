"""The one place configuration is read: environment variables (prefix ``TRIAGE_``) and ``.env``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ticket_triage.package_files import package_path

#: The product's published seed weights for the weighted soft vote.
DEFAULT_WEIGHTS: dict[str, float] = {
    "xgboost": 0.34,
    "lightgbm": 0.28,
    "random_forest": 0.20,
    "bert": 0.12,
    "logreg": 0.06,
}


def _in_var(name: str) -> Any:
    """A default under ``var_dir`` (given or defaulted: fields are validated in order, var_dir first)."""
    return Field(default_factory=lambda data: data["var_dir"] / name)


class Settings(BaseSettings):
    """Runtime and training defaults; CLI options override the training ones per run.

    Folders default to ones under the working directory, as `make run` uses them from the checkout's root;
    the default feature config is the one shipped in the package.
    """

    model_config = SettingsConfigDict(env_prefix="TRIAGE_", env_file=".env", extra="ignore")

    models_dir: Path = Field(default_factory=lambda: Path.cwd() / "models")
    #: Local state of the service: API keys, cache signing key, ONNX exports, review database, spool.
    var_dir: Path = Field(default_factory=lambda: Path.cwd() / "var")
    feature_config: Path = Field(default_factory=lambda: package_path("ticket_triage", "features.toml"))
    routing_threshold: float = Field(0.7, ge=0.0, le=1.0)
    #: threshold | singleton | both (routing.py). Unset, each bundle routes by the rule its evaluation chose.
    routing_rule: Literal["threshold", "singleton", "both"] = "threshold"
    #: Miscoverage of the conformal prediction sets: at 0.05 a set misses the true queue for about 1
    #: ticket in 20, per queue. Training evaluates at it; unset, serving uses the bundle's.
    conformal_alpha: float = Field(0.05, gt=0.0, lt=1.0)
    #: Explanations (models/explanation.py): masked copies of the ticket the model scores per explanation,
    #: and how many words are named per label.
    explain_max_evals: int = Field(200, ge=10, le=2000)
    explain_top_words: int = Field(5, ge=1, le=20)
    seed: int = 13

    # Held-out shares carved from the training data: validation (weights + calibration) and test (report).
    validation_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.1, ge=0.0, lt=0.5)
    # A class needs at least this many rows to be split across train/validation/test.
    min_rows_per_class: int = Field(3, ge=1)

    #: Threads per library pool; None = the CPUs this process may use (affinity and cgroup quota).
    threads: int | None = Field(None, ge=1)
    weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))

    #: Cross-fitting folds: the encoder is fine-tuned once per fold (plus once on all rows) so no member
    #: trains on vectors of rows the encoder saw, and the other members are refitted per fold for the
    #: out-of-fold predictions the ensemble weights are learned from. 2 keeps training on the full
    #: BANKING77 file near 13 min here (3: 20 min); the two fold fine-tunes run beside the final one.
    cv_folds: int = Field(2, ge=2, le=10)
    #: Rare classes weigh more in every member's loss: (rows / (classes * class rows)) ** power.
    class_weight_power: float = Field(0.5, ge=0.0, le=1.0)

    #: Fine-tuning of the sentence encoder (its heads are the ensemble's "bert" member).
    bert_epochs: int = Field(3, ge=1)
    bert_batch_size: int = Field(32, ge=1)
    bert_learning_rate: float = Field(1.5e-4, gt=0)
    #: Overrides ``max_seq_length`` of the feature config's [embeddings] (tokens) when set.
    bert_max_length: int | None = Field(None, ge=8, le=512)

    xgboost_rounds: int = Field(300, ge=1)
    lightgbm_rounds: int = Field(300, ge=1)
    forest_trees: int = Field(300, ge=1)

    # --- serving -----------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1)
    #: Keys as ``ROLE:KEY`` or ``NAME:ROLE:KEY``, comma-separated; added to those in ``api_key_file``.
    api_keys: str | None = None
    api_key_file: Path = _in_var("api_keys.json")
    #: Development only: serve without any key check.
    auth_disabled: bool = False

    #: Redis URL; without it the service caches in-process.
    redis_url: str | None = None
    cache_ttl_seconds: int = Field(3600, ge=1)
    cache_max_entries: int = Field(50_000, ge=1)
    #: Longest wait for one Redis call before it counts as a failure and the request skips the cache.
    redis_timeout_ms: int = Field(50, ge=1)
    breaker_fail_max: int = Field(3, ge=1)
    breaker_reset_seconds: float = Field(5.0, gt=0)
    #: Secret (16+ bytes) that signs every value written to Redis, so a value anyone else wrote there is
    #: never served as the model's answer. Instances sharing one Redis need the same one; unset, the first
    #: process makes a random one in ``cache_signing_key_file`` (owner-only) for this host's workers.
    cache_signing_key: SecretStr | None = None
    cache_signing_key_file: Path = _in_var("cache_signing.key")

    #: How the service runs the MiniLM encoders: "onnx" (ONNX Runtime, float32; about twice as fast for one
    #: ticket) or "torch" (exactly what `triage predict` computes). Training always uses torch.
    encoder_runtime: Literal["onnx", "torch"] = "onnx"
    onnx_dir: Path = _in_var("onnx")

    # --- review queue ------------------------------------------------------------------------------
    #: SQLAlchemy URL of the review store; without it an SQLite file under var/ (embedded).
    database_url: str | None = None
    database_file: Path = _in_var("review.sqlite3")
    #: How long a claimed review item stays with its reviewer before it returns to the queue.
    review_lease_seconds: int = Field(600, ge=5)

    #: The model's agreement with reviewers is measured over this many latest resolutions.
    agreement_window: int = Field(200, ge=1)
    #: How often each worker refreshes the review and drift gauges.
    monitor_interval_seconds: float = Field(15.0, gt=0)

    #: Drift is measured on the latest this-many predictions of the serving model (read from the audit
    #: log, so every worker sees the same window).
    drift_window: int = Field(1000, ge=10)
    #: Fewer predictions than this in the window: no PSI yet (too noisy to mean anything).
    drift_min_window: int = Field(100, ge=1)

    # --- audit log ---------------------------------------------------------------------------------
    #: Record every prediction in the database (written in batches by a background writer).
    audit_enabled: bool = True
    #: Audit records older than this are deleted by the writer; 0 keeps them forever.
    audit_retention_days: int = Field(30, ge=0)
    audit_batch_size: int = Field(500, ge=1)
    #: Longest time a recorded prediction waits in memory before its batch is written.
    audit_flush_ms: int = Field(200, ge=1)
    #: Records held in memory while the writer is behind; beyond that they go straight to the spool.
    audit_queue_max: int = Field(50_000, ge=1)
    #: Where review items and audit records wait, append-only and fsynced, while the database is down.
    spool_dir: Path = _in_var("spool")
    #: How often the writer retries the database while records wait in the spool.
    spool_retry_seconds: float = Field(1.0, gt=0)

    #: How often each worker checks the models folder's LIVE file and hot-reloads when it changed
    #: (`triage promote`); 0 turns the watch off.
    model_watch_seconds: float = Field(5.0, ge=0)

    max_batch_size: int = Field(64, ge=1)
    #: Extra wait for more requests before a pass. 0 still batches under load: requests that arrive
    #: while a pass runs share the next one; a wait only adds latency when the service is idle.
    max_wait_ms: float = Field(0.0, ge=0)
    #: /predict/batch is cut into passes of at most max_bulk_size tickets and max_pass_chars text
    #: characters, and passes alternate with single /predict tickets, so a single ticket waits for at most
    #: one such pass (see serving/batcher.py). Large passes are cheaper per ticket; the character bound
    #: keeps one near a second on 2 cores (spaCy reads up to 5,000 characters of each ticket, ~0.15 s).
    max_bulk_size: int = Field(256, ge=1)
    max_pass_chars: int = Field(24_000, ge=1)
    #: Compute spaCy's features in a worker process beside the encoder (False: on the inference thread).
    entity_process: bool = True
    batch_limit: int = Field(1000, ge=1)
    max_text_chars: int = Field(20_000, ge=1)
    #: Subject plus description characters over all tickets of one /predict/batch request (413 past it):
    #: bounds one request's scoring cost whatever the per-ticket limit (1,000 tickets of 4,000 characters).
    max_batch_chars: int = Field(4_000_000, ge=1)
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)

    # --- helpdesk integrations (serving/routes/integrations.py, integrations/) ----------------------
    #: Per system, the secret its webhooks are signed with (Zendesk's signing secret, Zammad's HMAC token,
    #: Jira's webhook secret) or the shared token it sends (Freshdesk). Unset: that system's endpoint
    #: refuses every call (401), so an integration is never open by accident.
    zendesk_webhook_secret: SecretStr | None = None
    freshdesk_webhook_secret: SecretStr | None = None
    jira_webhook_secret: SecretStr | None = None
    zammad_webhook_secret: SecretStr | None = None
    #: A signed Zendesk delivery older (or further in the future) than this is refused as a replay.
    webhook_replay_seconds: int = Field(300, ge=1)
    #: TOML file mapping model labels to the helpdesk's own group or queue ids (docs/integrations.md).
    #: Set, a label without a mapping is never sent out as a route: its tickets go to review.
    route_map_file: Path | None = None

    # --- outbound notifier (notify/) ----------------------------------------------------------------
    #: Every routing decision is POSTed here, signed with ``notify_secret``; unset, nothing is sent.
    notify_url: str | None = None
    notify_secret: SecretStr | None = None
    #: Failed deliveries are retried with exponential backoff (base doubling up to the cap, with jitter);
    #: after this many attempts the decision is dead-lettered in the database (GET /admin/notifications).
    notify_max_attempts: int = Field(12, ge=1)
    notify_backoff_seconds: float = Field(1.0, gt=0)
    notify_backoff_max_seconds: float = Field(300.0, gt=0)
    notify_timeout_seconds: float = Field(10.0, gt=0)
    #: Deliveries in flight at once (different tickets; one ticket's decisions go out one at a time).
    notify_concurrency: int = Field(8, ge=1)
    notify_poll_seconds: float = Field(1.0, gt=0)
