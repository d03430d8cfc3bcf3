"""The ``triage`` command: the contract other tools script against (train, predict, evaluate, demo,
and the feedback loop: retrain, compare, promote)."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from ticket_triage.data.errors import DataError
from ticket_triage.data.loader import LoadResult, load_tickets, parse_columns
from ticket_triage.data.schema import ColumnMap

if TYPE_CHECKING:
    from ticket_triage.audit import DeadLetterStore

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(
    help="Ticket Triage: classify helpdesk tickets into a queue and a priority with calibrated confidence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DataOpt = Annotated[
    list[Path], typer.Option("--data", help="CSV, Parquet or JSON Lines file; repeat for more.")
]
TextOpt = Annotated[str, typer.Option("--text", help="Text column(s), comma-separated, e.g. subject,body.")]
PriorityOpt = Annotated[str | None, typer.Option("--priority", help="Priority column (second target).")]
TimestampOpt = Annotated[str | None, typer.Option("--timestamp", help="Ticket creation time column.")]
ChannelOpt = Annotated[str | None, typer.Option("--channel", help="Channel column (email, chat, …).")]
TierOpt = Annotated[str | None, typer.Option("--tier", help="Customer tier column.")]
UrgencyOpt = Annotated[str | None, typer.Option("--urgency", help="Declared urgency column.")]
IdOpt = Annotated[
    str | None, typer.Option("--id", help="ID column copied to the output (default: 'id' if present).")
]
ModelOpt = Annotated[
    Path, typer.Option("--model", help="Bundle folder, or a models folder with a LIVE file.")
]


def _fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _columns(text: str, **fields: str | None) -> ColumnMap:
    try:
        return ColumnMap(text=parse_columns(text), **fields)
    except ValueError as exc:
        _fail(f"--text: {exc}")


def _load(paths: list[Path], columns: ColumnMap, require_label: bool) -> LoadResult:
    try:
        result = load_tickets(paths, columns, require_label=require_label)
    except DataError as exc:
        _fail(str(exc))
    for line in result.report.warnings:
        typer.echo(f"data: {line}", err=True)
    typer.echo(f"data: {result.report.rows_kept} of {result.report.rows_read} rows used", err=True)
    return result


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log each step.")] = False) -> None:
    """Ticket Triage command line."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(message)s",
        stream=sys.stderr,
    )


@app.command()
def train(
    data: DataOpt,
    text: TextOpt,
    label: Annotated[str, typer.Option("--label", help="Category column (the queue/team).")],
    out: Annotated[
        Path, typer.Option("--out", help="Models folder; the bundle is written to a new version in it.")
    ],
    priority: PriorityOpt = None,
    timestamp: TimestampOpt = None,
    channel: ChannelOpt = None,
    tier: TierOpt = None,
    urgency: UrgencyOpt = None,
    weights: Annotated[
        str,
        typer.Option(
            "--weights",
            help="learned: fitted on out-of-fold predictions (best); seed: the published weights.",
        ),
    ] = "learned",
    features: Annotated[Path | None, typer.Option("--features", help="Feature config TOML.")] = None,
    bert_epochs: Annotated[
        int | None, typer.Option("--bert-epochs", help="Fine-tuning epochs of the sentence encoder.")
    ] = None,
) -> None:
    """Train the five-member ensemble (and a priority model when --priority is given) into a new bundle."""
    from ticket_triage.models.training import WEIGHTINGS

    if weights not in WEIGHTINGS:
        _fail(f"--weights must be one of {', '.join(WEIGHTINGS)}, got {weights!r}")
    from ticket_triage.config import Settings
    from ticket_triage.features.config import FeatureConfig
    from ticket_triage.models.evaluation import write_training_report
    from ticket_triage.models.training import train_bundle

    settings = Settings()
    if bert_epochs is not None:
        settings = settings.model_copy(update={"bert_epochs": bert_epochs})
    try:
        feature_config = FeatureConfig.from_toml(features or settings.feature_config)
    except ValueError as exc:
        _fail(str(exc))
    columns = _columns(
        text, label=label, priority=priority, timestamp=timestamp, channel=channel, tier=tier, urgency=urgency
    )
    loaded = _load(data, columns, require_label=True)
    try:
        result = train_bundle(
            loaded.frame,
            settings=settings,
            feature_config=feature_config,
            weighting=weights,
            out_dir=out,
            data_info={
                "data_files": [str(p) for p in data],
                "columns": columns.__dict__ | {"text": list(columns.text)},
            },
        )
    except ValueError as exc:
        _fail(str(exc))
    lines = write_training_report(result, settings.routing_threshold)
    typer.echo(f"bundle: {result.path}")
    for line in lines:
        typer.echo(line)


@app.command()
def predict(
    model: ModelOpt,
    data: Annotated[Path, typer.Option("--data", help="Tickets to classify.")],
    text: TextOpt,
    out: Annotated[Path, typer.Option("--out", help="Output CSV, one row per input row in input order.")],
    timestamp: TimestampOpt = None,
    channel: ChannelOpt = None,
    tier: TierOpt = None,
    urgency: UrgencyOpt = None,
    id_column: IdOpt = None,
    threshold: Annotated[
        float | None,
        typer.Option("--threshold", min=0.0, max=1.0, help="Routing threshold (default: the bundle's)."),
    ] = None,
) -> None:
    """Classify tickets and write label, confidence, route, priority and per-class probabilities."""
    from ticket_triage.models.bundle import BundleError, load_bundle
    from ticket_triage.models.predictor import predict_frame
    from ticket_triage.routing import RoutingPolicy

    try:
        bundle = load_bundle(model)
    except BundleError as exc:
        _fail(str(exc))
    columns = _columns(text, timestamp=timestamp, channel=channel, tier=tier, urgency=urgency, id=id_column)
    loaded = _load([data], columns, require_label=False)
    result = predict_frame(bundle, loaded.frame, RoutingPolicy(override=threshold))
    out.parent.mkdir(parents=True, exist_ok=True)
    result.to_csv(out, index=False)
    auto = int((result["route"] == "auto").sum())
    typer.echo(
        f"wrote {len(result)} predictions to {out} ({auto} auto-routed, {len(result) - auto} to review)"
    )


@app.command()
def evaluate(
    model: ModelOpt,
    data: Annotated[Path, typer.Option("--data", help="Labelled tickets the model has not seen.")],
    text: TextOpt,
    label: Annotated[str, typer.Option("--label", help="Category column.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for report.md, report.json and plots.")],
    priority: PriorityOpt = None,
    timestamp: TimestampOpt = None,
    channel: ChannelOpt = None,
    tier: TierOpt = None,
    urgency: UrgencyOpt = None,
) -> None:
    """Evaluate a bundle on labelled data: every member, the ensemble and the LinearSVC baseline."""
    from ticket_triage.models.bundle import BundleError, load_bundle
    from ticket_triage.models.evaluation import evaluate_bundle

    try:
        bundle = load_bundle(model)
    except BundleError as exc:
        _fail(str(exc))
    columns = _columns(
        text, label=label, priority=priority, timestamp=timestamp, channel=channel, tier=tier, urgency=urgency
    )
    loaded = _load([data], columns, require_label=True)
    for line in evaluate_bundle(bundle, loaded.frame, out):
        typer.echo(line)
    typer.echo(f"report: {out / 'report.md'}")


@app.command("drift-report")
def drift_report(
    model: ModelOpt,
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="The HTML report to write.")],
    text: ColumnTextOpt = None,
    timestamp: TimestampOpt = None,
    channel: ChannelOpt = None,
    tier: TierOpt = None,
    urgency: UrgencyOpt = None,
) -> None:
    """Evidently data-drift report of a ticket file against the bundle's training sample, plus PSI."""
    from ticket_triage.feedback import FeedbackError
    from ticket_triage.feedback.retrain import champion_columns
    from ticket_triage.models.bundle import BundleError, load_bundle
    from ticket_triage.monitoring.drift import compute_drift
    from ticket_triage.monitoring.evidently_report import (
        ReportUnavailableError,
        drift_report_html,
        reference_frame,
        rows_of_frame,
        window_frame,
    )

    try:
        bundle = load_bundle(model)
    except BundleError as exc:
        _fail(str(exc))
    if text:
        columns = _columns(text, timestamp=timestamp, channel=channel, tier=tier, urgency=urgency)
    else:
        overrides = _overrides(None, timestamp=timestamp, channel=channel, tier=tier, urgency=urgency)
        try:
            columns = champion_columns(bundle.manifest, overrides)
        except FeedbackError as exc:
            _fail(f"{exc} (here only --text is needed)")
    # Drift compares inputs and answers: the file needs no labels.
    loaded = _load(data, dataclasses.replace(columns, label=None, priority=None), require_label=False)
    rows = rows_of_frame(bundle, loaded.frame)
    summary = compute_drift(bundle.reference, rows, bundle.version)
    try:
        html = drift_report_html(reference_frame(bundle.reference), window_frame(rows))
    except ReportUnavailableError as exc:
        _fail(str(exc))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    worst = sorted(summary.features.items(), key=lambda kv: -kv[1])[:5]

    def three(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    typer.echo(
        f"PSI on {summary.window} tickets: prediction {three(summary.prediction)}, confidence "
        f"{three(summary.confidence)}; features over 0.1: {summary.over.get('0.1')}, over 0.25: "
        f"{summary.over.get('0.25')} of {len(summary.features)}"
    )
    typer.echo("highest: " + ", ".join(f"{name} {value:.3f}" for name, value in worst))
    typer.echo(f"report: {out}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Models folder.")] = Path("models"),
    data: Annotated[Path, typer.Option("--data", help="Where the generated demo CSV goes.")] = Path(
        "data/demo_tickets.csv"
    ),
    rows: Annotated[int, typer.Option("--rows", min=200, help="Demo tickets to generate.")] = 3000,
    bert_epochs: Annotated[
        int, typer.Option("--bert-epochs", help="Sentence-encoder fine-tuning epochs.")
    ] = 2,
) -> None:
    """Generate synthetic demo tickets and train on them unless a live model already exists."""
    from ticket_triage.data.demo import write_demo_csv
    from ticket_triage.models.bundle import LIVE_POINTER

    if (out / LIVE_POINTER).exists():
        live = out / (out / LIVE_POINTER).read_text().strip()
        typer.echo(f"live model: {live} (delete {out / LIVE_POINTER} to retrain)")
        return
    if not data.exists():
        data.parent.mkdir(parents=True, exist_ok=True)
        write_demo_csv(data, rows, seed=7)
        typer.echo(f"generated {rows} synthetic demo tickets in {data}")
    train(
        data=[data],
        text="subject,body",
        label="category",
        out=out,
        priority="priority",
        timestamp="created_at",
        channel="channel",
        tier="customer_tier",
        urgency=None,
        weights="learned",
        features=None,
        bert_epochs=bert_epochs,
    )


def _overrides(text: str | None, **fields: str | None) -> dict[str, object]:
    """Column options given on the command line; the rest come from the champion's manifest."""
    out: dict[str, object] = {k: v for k, v in fields.items() if v}
    if text:
        try:
            out["text"] = parse_columns(text)
        except ValueError as exc:
            _fail(f"--text: {exc}")
    return out


ColumnTextOpt = Annotated[
    str | None, typer.Option("--text", help="Text column(s); default: the champion's training columns.")
]
ColumnLabelOpt = Annotated[
    str | None, typer.Option("--label", help="Category column; default: the champion's.")
]
ToleranceOpt = Annotated[
    float,
    typer.Option(
        "--tolerance",
        min=0.0,
        max=1.0,
        help="How far below the champion's category accuracy or macro-F1 still counts as not worse.",
    ),
]


@app.command()
def retrain(
    model: Annotated[
        Path, typer.Option("--model", help="The champion: a bundle folder, or a models folder with LIVE.")
    ],
    corrections: Annotated[
        str,
        typer.Option(
            "--corrections",
            help="Export of GET /reviews/export (CSV or JSONL), or the review database URL "
            "(sqlite:///var/reviews.db, postgresql+psycopg://…).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Models folder for the challenger (never made live).")],
    data: Annotated[
        list[Path] | None,
        typer.Option("--data", help="The champion's training data; default: the files its manifest names."),
    ] = None,
    text: ColumnTextOpt = None,
    label: ColumnLabelOpt = None,
    priority: PriorityOpt = None,
    timestamp: TimestampOpt = None,
    channel: ChannelOpt = None,
    tier: TierOpt = None,
    urgency: UrgencyOpt = None,
    id_column: Annotated[
        str | None, typer.Option("--id", help="Ticket id column that corrections' ticket_id matches.")
    ] = None,
    bert_epochs: Annotated[
        int | None, typer.Option("--bert-epochs", help="Fine-tuning epochs of the BERT member.")
    ] = None,
) -> None:
    """Train a challenger on the champion's data plus reviewers' corrections (a correction overrides the
    original label of the same ticket). Compare it with `triage compare`, then `triage promote` it."""
    from ticket_triage.config import Settings
    from ticket_triage.feedback import FeedbackError
    from ticket_triage.feedback.retrain import retrain as run_retrain
    from ticket_triage.models.bundle import BundleError
    from ticket_triage.models.evaluation import write_training_report

    settings = Settings()
    if bert_epochs is not None:
        settings = settings.model_copy(update={"bert_epochs": bert_epochs})
    overrides = _overrides(
        text,
        label=label,
        priority=priority,
        timestamp=timestamp,
        channel=channel,
        tier=tier,
        urgency=urgency,
        id=id_column,
    )
    try:
        result = run_retrain(
            model, data=data, corrections=corrections, out_dir=out, settings=settings, overrides=overrides
        )
    except (BundleError, FeedbackError, DataError, ValueError) as exc:  # ValueError: e.g. one class left
        _fail(str(exc))
    for report in (result.data_report, result.corrections_report):
        for line in report.warnings:
            typer.echo(f"data: {line}", err=True)
    typer.echo(f"data: {result.data_report.rows_kept} of {result.data_report.rows_read} original rows used")
    for line in result.merge.lines():
        typer.echo(line)
    lines = write_training_report(result.train, settings.routing_threshold)
    typer.echo(f"champion: {result.champion}")
    typer.echo(f"challenger: {result.train.path} (not live; compare it, then promote it)")
    for line in lines:
        typer.echo(line)


@app.command()
def compare(
    champion: Annotated[Path, typer.Argument(help="Champion bundle, or a models folder (its LIVE bundle).")],
    challenger: Annotated[Path, typer.Argument(help="Challenger bundle folder; comparison.json goes there.")],
    data: Annotated[list[Path], typer.Option("--data", help="Labelled held-out tickets neither model saw.")],
    text: ColumnTextOpt = None,
    label: ColumnLabelOpt = None,
    priority: PriorityOpt = None,
    timestamp: TimestampOpt = None,
    channel: ChannelOpt = None,
    tier: TierOpt = None,
    urgency: UrgencyOpt = None,
    tolerance: ToleranceOpt = 0.01,
) -> None:
    """Evaluate champion and challenger on the same held-out data; saves the verdict for `triage promote`."""
    from ticket_triage.feedback import FeedbackError
    from ticket_triage.feedback.compare import COMPARISON_FILE, compare_bundles
    from ticket_triage.feedback.retrain import champion_columns
    from ticket_triage.models.bundle import BundleError, load_bundle, resolve_bundle_path

    try:
        if not (challenger / "manifest.json").exists():
            resolve_bundle_path(challenger)  # names what is wrong with the path, if it can
            _fail(f"{challenger} is not a bundle folder; give the challenger bundle itself")
        old, new = load_bundle(champion), load_bundle(challenger)
        if old.path.resolve() == new.path.resolve():
            _fail(f"champion and challenger are the same bundle ({new.path})")
        overrides = _overrides(
            text,
            label=label,
            priority=priority,
            timestamp=timestamp,
            channel=channel,
            tier=tier,
            urgency=urgency,
        )
        columns = champion_columns(old.manifest, overrides)
        loaded = _load(data, columns, require_label=True)
        comparison = compare_bundles(old, new, loaded.frame, data, tolerance=tolerance)
    except (BundleError, FeedbackError) as exc:
        _fail(str(exc))
    saved = comparison.save(new.path / COMPARISON_FILE)
    for line in comparison.lines():
        typer.echo(line)
    typer.echo(f"comparison: {saved}")


@app.command()
def promote(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder to make live in its models folder.")],
    force: Annotated[
        bool, typer.Option("--force", help="Promote even without a passing comparison (recorded).")
    ] = False,
    tolerance: ToleranceOpt = 0.01,
) -> None:
    """Mark a bundle live; refuses unless its comparison against the live bundle shows it is not worse."""
    from ticket_triage.feedback import FeedbackError
    from ticket_triage.feedback.promote import HISTORY_FILE
    from ticket_triage.feedback.promote import promote as run_promote
    from ticket_triage.models.bundle import BundleError

    try:
        result = run_promote(bundle, tolerance=tolerance, force=force)
    except (BundleError, FeedbackError) as exc:
        _fail(str(exc))
    if result.already_live:
        typer.echo(f"{result.bundle} is already live; nothing changed")
        return
    if result.forced:
        for reason in result.overridden:
            typer.secho(f"forced past: {reason}", fg=typer.colors.YELLOW, err=True)
    typer.echo(f"live: {result.bundle} (was {result.previous or 'none'})")
    typer.echo(f"history: {bundle.absolute().parent / HISTORY_FILE}")


@app.command()
def serve(
    model: ModelOpt = Path("models"),
    host: Annotated[str | None, typer.Option("--host", help="Interface (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", min=1, max=65535, help="Port (default 8000).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Worker processes.")] = None,
    create_keys: Annotated[
        bool, typer.Option("--create-keys", help="Create a local API key file if there are no keys at all.")
    ] = False,
) -> None:
    """Serve the HTTP API (predict, health, metrics, admin) on the given model."""
    from ticket_triage.config import Settings
    from ticket_triage.models.bundle import BundleError, check_bundle, read_manifest, resolve_bundle_path
    from ticket_triage.serving.auth import KeySpecError, first_run_path, startup_key_store
    from ticket_triage.serving.server import cache_line, run_server

    overrides = {"models_dir": model.resolve(), "host": host, "port": port, "workers": workers}
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    try:  # fail here, with the reason, rather than in every worker
        bundle_path = resolve_bundle_path(settings.models_dir)
        check_bundle(bundle_path, read_manifest(bundle_path))
    except BundleError as exc:
        _fail(f"{exc} (train one with `triage train` or `make run`)")
    try:
        keys, created = startup_key_store(
            env_spec=settings.api_keys,
            key_file=settings.api_key_file,
            auth_disabled=settings.auth_disabled,
            create_if_missing=create_keys,
        )
    except KeySpecError as exc:
        _fail(str(exc))
    base = f"http://{settings.host}:{settings.port}"
    typer.echo(f"Ticket Triage serving {bundle_path.name} on {base}")
    typer.echo(f"  API docs:  {base}/docs")
    if settings.auth_disabled:
        typer.secho(
            "  API keys:  none (TRIAGE_AUTH_DISABLED is set; development only)", fg=typer.colors.YELLOW
        )
    else:
        sources = f"{settings.api_key_file}{' + TRIAGE_API_KEYS' if settings.api_keys else ''}"
        typer.echo(f"  API keys:  {len(keys)} in {sources}")
    first_run = first_run_path(settings.api_key_file)
    if created or first_run.exists():
        typer.echo(f"  new keys:  {first_run} (copy them, then delete that file)")
    typer.echo(cache_line(settings))  # the Redis URL with its password as ***
    run_server(settings)


keys_app = typer.Typer(help="Manage the API keys the service accepts.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("add")
def keys_add(
    name: Annotated[str, typer.Option("--name", help="Who uses the key (a reviewer's name, 'helpdesk', …).")],
    role: Annotated[str, typer.Option("--role", help="predict, review or admin.")],
) -> None:
    """Add a key to the key file (only its hash is stored) and print it once."""
    from ticket_triage.config import Settings
    from ticket_triage.serving.auth import KeySpecError, Role, add_key

    try:
        key = add_key(Settings().api_key_file, name, Role(role.lower()))
    except ValueError as exc:  # KeySpecError, or a role that is not one of the three
        _fail(
            str(exc)
            if isinstance(exc, KeySpecError)
            else f"--role must be predict, review or admin, not {role!r}"
        )
    typer.echo(key)


@keys_app.command("list")
def keys_list() -> None:
    """Names and roles of the configured keys (never the keys)."""
    from ticket_triage.config import Settings
    from ticket_triage.serving.auth import KeySpecError, KeyStore

    settings = Settings()
    try:
        store = KeyStore.load(env_spec=settings.api_keys, key_file=settings.api_key_file)
    except KeySpecError as exc:
        _fail(str(exc))
    for name, role in store.names():
        typer.echo(f"{name}\t{role}")


dead_letter_app = typer.Typer(
    help="Records no database would take, kept with the reason (the dead-letter store).", no_args_is_help=True
)
app.add_typer(dead_letter_app, name="dead-letter")


def _dead_letter_store() -> DeadLetterStore:
    """The store of the configured database and spool folder (imports stay lazy: the CLI starts fast)."""
    from ticket_triage.audit import DeadLetterStore
    from ticket_triage.config import Settings
    from ticket_triage.review import make_engine

    settings = Settings()
    return DeadLetterStore(make_engine(settings), settings.spool_dir)


@dead_letter_app.command("list")
def dead_letter_list(
    limit: Annotated[int, typer.Option("--limit", min=1, help="Newest entries of the table to show.")] = 50,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object a line, payload included.")
    ] = False,
) -> None:
    """Entries of the dead-letter table (newest first), then of the fallback file in the spool folder."""
    import json

    from ticket_triage.audit.isolate import describe

    store = _dead_letter_store()
    try:
        entries = store.table_entries(limit)
    except Exception as exc:  # the database is down: the file may still say something
        typer.secho(f"dead-letter table unavailable: {describe(exc)}", fg=typer.colors.YELLOW, err=True)
        entries = []
    entries += store.file_entries()
    for entry in entries:
        if as_json:
            typer.echo(json.dumps(entry, ensure_ascii=True))
        else:
            key = entry["id"] if entry["store"] == "table" else entry["fingerprint"][:12]
            typer.echo(
                f"{entry['store']}\t{key}\t{entry['failed_at']}\t{entry['kind']}"
                f"\t{entry['prediction_id'] or '-'}\t{entry['reason']}"
            )
    typer.echo(f"{len(entries)} dead letter(s)", err=True)


@dead_letter_app.command("requeue")
def dead_letter_requeue(
    ids: Annotated[list[int] | None, typer.Argument(help="Table ids (see `list`).")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every entry of the table.")] = False,
    with_file: Annotated[bool, typer.Option("--file", help="Also every entry of the fallback file.")] = False,
) -> None:
    """Hand entries back to the service (after fixing their cause): they become a spool file that the
    writer adopts and replays; an entry still at fault comes back to the store with its reason."""
    if not ids and not every and not with_file:
        _fail("name table ids, or pass --all and/or --file")
    store = _dead_letter_store()
    result = store.requeue(None if every else list(ids or []), with_file=with_file)
    for line in result.skipped:
        typer.echo(f"skipped: {line}", err=True)
    typer.echo(f"requeued {result.spooled} record(s) into {store.directory}")


if __name__ == "__main__":
    app()
