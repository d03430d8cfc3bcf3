"""The operations files: Prometheus config, alert rules and their unit tests, Grafana provisioning and
dashboards, docker-compose.yml and the Dockerfile.

There is no Docker engine on the development machines, so the compose stack is checked by structure only.
Prometheus itself is real: `promtool` (Debian package `prometheus`) checks the config, the rules and every
dashboard query, and runs the alert unit tests. Without it these tests fail, not skip: CI installs it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
GRAFANA = ROOT / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))

# The metric contract of the service (name -> labels). Dashboards and alerts may only use these, so renaming a
# metric in the service without updating this list, the dashboards and the alerts breaks a test here.
COUNTERS: dict[str, tuple[str, ...]] = {
    "triage_http_requests_total": ("route", "method", "status"),
    "triage_predictions_total": ("category", "priority", "route"),
    "triage_cache_lookups_total": ("backend", "result"),
    "triage_cache_errors_total": ("backend", "operation"),
    "triage_cache_breaker_transitions_total": ("state",),
    "triage_model_reloads_total": ("outcome",),
    "triage_durable_records_total": ("outcome",),
    "triage_reviews_resolved_total": ("agreed",),
    "triage_dead_letter_total": ("kind",),
    "triage_inference_failed_tickets_total": (),
    "triage_webhook_deliveries_total": ("system", "outcome"),
    "triage_ticket_answers_total": ("result",),
    "triage_notifications_total": ("outcome",),
}
HISTOGRAMS: dict[str, tuple[str, ...]] = {
    "triage_http_request_duration_seconds": ("route", "method", "status"),
    "triage_inference_batch_size": (),
    "triage_inference_duration_seconds": (),
    "triage_prediction_confidence": (),
    "triage_explain_seconds": (),
    "triage_notification_seconds": (),
}
GAUGES: dict[str, tuple[str, ...]] = {
    "triage_cache_breaker_state": (),
    "triage_spool_pending": (),
    "triage_spool_full": (),
    "triage_models_loaded": (),
    "triage_model_info": ("version", "trained_at"),
    "triage_model_review_share_baseline": (),
    "triage_review_queue_depth": ("status",),
    "triage_review_agreement_ratio": (),
    "triage_drift_psi": ("feature",),
    "triage_prediction_drift_psi": (),
    "triage_confidence_drift_psi": (),
    "triage_drift_features_over": ("threshold",),
    "triage_drift_window_size": (),
    "triage_notification_pending": (),
}
# Series names a query may use: the contract, the histograms' series, and Prometheus's own `up`.
SERIES: dict[str, tuple[str, ...]] = {
    **COUNTERS,
    **GAUGES,
    **{f"{name}{suffix}": labels for name, labels in HISTOGRAMS.items() for suffix in ("_sum", "_count")},
    **{f"{name}_bucket": (*labels, "le") for name, labels in HISTOGRAMS.items()},
    "up": (),
}
# Labels Prometheus adds (job, instance), the multiprocess registry may add (pid), and label_replace creates.
EXTRA_LABELS = {"job", "instance", "pid", "distribution"}
ROUTES = {"/predict", "/predict/batch"}
JOB = "triage-api"

_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
}


# --- helpers ---


def promtool() -> str:
    """The promtool binary; a clear failure (not a skip) when the Debian package is missing."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found: install Prometheus with `apt-get install -y prometheus` (see .ci/run)"
        )
    return path


def run_promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Runs promtool, prints what it said (the summary shows with -s or on failure) and returns the result."""
    result = subprocess.run(
        [promtool(), *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )
    print(f"$ promtool {' '.join(map(str, args))}\n{result.stdout}{result.stderr}")
    return result


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def prometheus_config_for(target: str, out_dir: Path, scrape_interval: str | None = None) -> Path:
    """The repository's Prometheus config pointed at ``target`` (e.g. 127.0.0.1:PORT), for a Prometheus on
    loopback: written to ``out_dir`` with absolute rule file paths. Tests that start Prometheus use it.
    """
    config = load_yaml(MONITORING / "prometheus.yml")
    config["rule_files"] = [str((MONITORING / name).resolve()) for name in config.get("rule_files", [])]
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            static["targets"] = [target]
    if scrape_interval:
        config["global"]["scrape_interval"] = scrape_interval
        config["global"]["scrape_timeout"] = scrape_interval
        config["global"]["evaluation_interval"] = scrape_interval
    out = out_dir / "prometheus.yml"
    out.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return out


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(MONITORING / "alerts.yml")["groups"] for rule in group["rules"]]


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """All panels, including those nested in collapsed rows."""
    out: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, expr) for every query of every panel."""
    out = []
    for path in DASHBOARDS:
        for panel in panels(json.loads(path.read_text(encoding="utf-8"))):
            for target in panel.get("targets", []):
                out.append((path.name, panel["title"], target["expr"]))
    return out


def all_expressions() -> list[tuple[str, str]]:
    """(where, expr) for every dashboard query and every alert expression."""
    queries = [(f"{name} / {title}", expr) for name, title, expr in dashboard_queries()]
    return queries + [(f"alerts.yml / {rule['alert']}", rule["expr"]) for rule in alert_rules()]


def selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """(series name, {label: value}) for every series selector in a PromQL expression.

    A deliberately small scanner: strings, label matchers, range/subquery brackets and grouping clauses are
    taken out first, so what is left that looks like an identifier and is not a function call or keyword is a
    series name. Good enough for the expressions in this repository, and promtool checks their syntax anyway.
    """
    found: list[tuple[str, dict[str, str]]] = []
    for match in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}", expr):
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=~?\s*"([^"]*)"', match.group(2)))
        if match.group(1):
            found.append((match.group(1), labels))
    bare = re.sub(r'"[^"]*"', '""', expr)
    bare = re.sub(r"\{[^}]*\}", "", bare)
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", bare)
    named = {name for name, _ in found}
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", bare):
        name, call = match.group(1), match.group(2)
        if call or name in _KEYWORDS or name in named or name in {"inf", "nan", "Inf", "NaN"}:
            continue
        found.append((name, {}))
    return found


def grouping_labels(expr: str) -> set[str]:
    """Label names in by/without/on/ignoring clauses."""
    out: set[str] = set()
    for clause in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", expr):
        out.update(label.strip() for label in clause.split(",") if label.strip())
    return out


# --- Prometheus ---


def test_promtool_check_config() -> None:
    """The compose config passes `promtool check config`, its relative rule file included."""
    result = run_promtool("check", "config", MONITORING / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_loopback_config_for_a_local_prometheus(tmp_path: Path) -> None:
    config_path = prometheus_config_for("127.0.0.1:18000", tmp_path, scrape_interval="2s")
    result = run_promtool("check", "config", config_path)
    assert result.returncode == 0, result.stdout + result.stderr
    config = load_yaml(config_path)
    assert config["scrape_configs"][0]["static_configs"][0]["targets"] == ["127.0.0.1:18000"]
    assert all(Path(rule_file).is_file() for rule_file in config["rule_files"])


def test_prometheus_config_scrapes_the_api_service() -> None:
    config = load_yaml(MONITORING / "prometheus.yml")
    interval = config["global"]["scrape_interval"]
    assert re.fullmatch(r"\d+s", interval) and 5 <= int(interval[:-1]) <= 15, interval
    assert config["rule_files"] == ["alerts.yml"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == JOB, "the alert rules match on this job name"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["static_configs"] == [{"targets": ["api:8000"]}]


def test_promtool_check_rules() -> None:
    result = run_promtool("check", "rules", MONITORING / "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_promtool_alert_unit_tests_pass() -> None:
    result = run_promtool("test", "rules", MONITORING / "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_documented_and_unit_tested_firing_and_not_firing() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    required = {
        "TriageReviewerAgreementLow",
        "TriageFeatureDrift",
        "TriageOutputDrift",
        "TriageReviewShareHigh",
        "TriagePredictLatencyHigh",
        "TriageCacheBreakerOpen",
        "TriageReviewBacklogGrowing",
        "TriageDatabaseUnreachable",
        "TriageHighErrorRatio",
        "TriageSpoolFull",
        "TriageDeadLettersAppearing",
        "TriageInferenceFailures",
        "TriageOldModelNotReleased",
        "TriageNotificationsDeadLettered",
        "TriageWebhooksRefused",
    }
    assert required <= set(names), required - set(names)
    for rule in rules:
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "")), f"{rule['alert']}: needs a `for:` duration"
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert len(rule["annotations"]["description"]) > 80, f"{rule['alert']}: say what to do"

    suite = load_yaml(MONITORING / "alerts_test.yml")
    assert suite["rule_files"] == ["alerts.yml"]
    firing: set[str] = set()
    silent: set[str] = set()
    for group in suite["tests"]:
        for case in group.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    assert set(names) <= firing, f"never shown firing: {set(names) - firing}"
    assert set(names) <= silent, f"never shown not firing: {set(names) - silent}"


# --- Grafana ---


def datasource_uids() -> set[str]:
    provisioned = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    return {source["uid"] for source in provisioned["datasources"]}


def test_grafana_datasource_points_at_the_compose_prometheus() -> None:
    (source,) = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert source["type"] == "prometheus"
    assert source["uid"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in load_yaml(ROOT / "docker-compose.yml")["services"]


def test_the_three_dashboards_are_there() -> None:
    titles = {json.loads(path.read_text(encoding="utf-8"))["title"] for path in DASHBOARDS}
    assert titles == {
        "Ticket Triage · Service",
        "Ticket Triage · Model & review",
        "Ticket Triage · Drift",
    }


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_dashboard_structure(path: Path) -> None:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["schemaVersion"] >= 36
    uids = datasource_uids()
    all_panels = panels(dashboard)
    ids = [panel["id"] for panel in all_panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {path.name}"
    cells: dict[tuple[int, int], str] = {}
    for panel in all_panels:
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= set(grid) and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["type"] in {"timeseries", "stat", "heatmap", "bargauge", "gauge", "table"}, panel["type"]
        assert panel["datasource"]["uid"] in uids, panel["title"]
        assert panel["targets"], f"{panel['title']!r} has no query"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"])["uid"] in uids, panel["title"]
            assert target["expr"].strip(), panel["title"]
            assert "$" not in target["expr"], f"{panel['title']!r}: plain PromQL only, no Grafana variables"


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query for real, as the expression of a recording rule."""
    queries = dashboard_queries()
    rules = [
        {"record": f"dashboard:query_{i}", "expr": expr, "labels": {"panel": f"{name}: {title}"[:100]}}
        for i, (name, title, expr) in enumerate(queries)
    ]
    rules_file = tmp_path / "dashboard_queries.yml"
    rules_file.write_text(
        yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}), encoding="utf-8"
    )
    result = run_promtool("check", "rules", rules_file)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout
    print(f"{len(queries)} dashboard queries parsed")


def test_grafana_dashboard_provider_reads_the_mounted_folder() -> None:
    (provider,) = load_yaml(GRAFANA / "provisioning" / "dashboards" / "dashboards.yml")["providers"]
    assert provider["type"] == "file"
    mounts = volume_mounts(load_yaml(ROOT / "docker-compose.yml")["services"]["grafana"])
    assert mounts.get("./grafana/dashboards") == provider["options"]["path"]
    assert mounts.get("./grafana/provisioning") == "/etc/grafana/provisioning"


# --- the metric contract ---


def test_every_query_uses_only_contract_metrics_and_labels() -> None:
    known_labels = {label for labels in SERIES.values() for label in labels} | EXTRA_LABELS
    for where, expr in all_expressions():
        found = selectors(expr)
        assert found, f"{where}: no series found in {expr!r}"
        for name, labels in found:
            assert name in SERIES, f"{where}: {name!r} is not in the metric contract"
            for label, value in labels.items():
                assert label in (*SERIES[name], *EXTRA_LABELS), f"{where}: {name} has no label {label!r}"
                if label == "route" and name.startswith("triage_http"):
                    assert set(value.split("|")) <= ROUTES, f"{where}: unknown route {value!r}"
        assert grouping_labels(expr) <= known_labels, f"{where}: {grouping_labels(expr) - known_labels}"


def test_the_contract_is_what_the_service_exports() -> None:
    """The contract above against the service's registry: a metric added, renamed or relabelled in
    ``ticket_triage.monitoring.metrics`` fails here until the contract, dashboards and alerts follow."""
    from prometheus_client import Counter, Gauge, Histogram

    from ticket_triage.monitoring.metrics import ServiceMetrics

    exported: dict[str, dict[str, tuple[str, ...]]] = {"counter": {}, "gauge": {}, "histogram": {}}
    for metric in vars(ServiceMetrics()).values():
        # _name is the name without `_total`; _labelnames the declared labels (children may not exist yet).
        labels = tuple(metric._labelnames) if hasattr(metric, "_labelnames") else ()
        if isinstance(metric, Counter):
            exported["counter"][f"{metric._name}_total"] = labels
        elif isinstance(metric, Gauge):
            exported["gauge"][metric._name] = labels
        elif isinstance(metric, Histogram):
            exported["histogram"][metric._name] = labels
    assert exported["counter"] == COUNTERS
    assert exported["gauge"] == GAUGES
    assert exported["histogram"] == HISTOGRAMS


def test_every_contract_metric_is_on_a_dashboard() -> None:
    used = {name for _, _, expr in dashboard_queries() for name, _ in selectors(expr)}
    bases = {
        re.sub(r"_(bucket|sum|count)$", "", name) if name.endswith(("_bucket", "_sum", "_count")) else name
        for name in used
    }
    missing = (set(COUNTERS) | set(GAUGES) | set(HISTOGRAMS)) - bases
    assert not missing, f"metrics no dashboard shows: {sorted(missing)}"


def test_the_scanner_finds_series_and_skips_functions() -> None:
    """The metric check is only as good as the scanner: it must see every series and nothing else."""
    expr = (
        "histogram_quantile(0.99, sum by (le) ("
        'rate(triage_http_request_duration_seconds_bucket{route="/predict"}[5m]))) > 0.2 and on (job) '
        'label_replace(max(triage_drift_psi), "x", "y", "", "") or vector(0)'
        " / scalar(sum(up))"
    )
    assert selectors(expr) == [
        ("triage_http_request_duration_seconds_bucket", {"route": "/predict"}),
        ("triage_drift_psi", {}),
        ("up", {}),
    ]
    assert selectors("sum(rate(triage_http_requests_totl[1m]))") == [("triage_http_requests_totl", {})]
    assert grouping_labels(expr) == {"le", "job"}


# --- docker-compose.yml and the Dockerfile ---


def volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Host path (or volume name) -> path in the container, for a compose service's short-syntax volumes."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        out[source] = target
    return out


def test_compose_wires_the_full_stack() -> None:
    compose = load_yaml(ROOT / "docker-compose.yml")
    services = compose["services"]
    assert {"api", "redis", "postgres", "prometheus", "grafana"} <= set(services)
    declared_volumes = set(compose.get("volumes") or {})

    for name, service in services.items():
        for source in volume_mounts(service):
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: mounts {source}, which is not in the repository"
            else:
                assert source in declared_volumes, f"{name}: named volume {source} is not declared"
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}'s healthcheck"

    api = services["api"]
    assert api["build"]["context"] == "." and api["build"].get("dockerfile", "Dockerfile") == "Dockerfile"
    assert api["environment"]["TRIAGE_REDIS_URL"] == "redis://redis:6379/0"
    assert api["environment"]["TRIAGE_DATABASE_URL"] == "postgresql+psycopg://postgres@postgres:5432/triage"
    assert api["depends_on"] == {
        "redis": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
    }
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    api_mounts = volume_mounts(api)
    assert api_mounts.get("./models") == "/app/models"
    assert "/app/var" in api_mounts.values()
    assert "8000" in " ".join(map(str, api["ports"]))

    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert "ping" in services["redis"]["healthcheck"]["test"]

    prometheus = services["prometheus"]
    assert volume_mounts(prometheus).get("./monitoring") == "/etc/prometheus"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]

    grafana = services["grafana"]
    assert grafana["depends_on"] == {"prometheus": {"condition": "service_healthy"}}
    env = grafana["environment"]
    assert env.get("GF_AUTH_ANONYMOUS_ENABLED") == "true" or "GF_SECURITY_ADMIN_PASSWORD" in env
    home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        dashboards_target = volume_mounts(grafana)["./grafana/dashboards"]
        assert (GRAFANA / "dashboards" / Path(home).relative_to(dashboards_target)).is_file()


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, args = line.partition(" ")
            out.append((instruction.upper(), args.strip()))
    return out


def test_dockerfile_builds_a_cpu_image_that_serves_as_non_root() -> None:
    steps = dockerfile_instructions()
    assert steps[0] == ("FROM", "python:3.11-slim")
    runs = " ".join(args for instruction, args in steps if instruction == "RUN")

    pins = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    torch_pin = next(pin for pin in pins if pin.startswith("torch=="))
    torch_install = re.search(r"pip install[^&]*" + re.escape(torch_pin), runs)
    assert torch_install and "download.pytorch.org/whl/cpu" in torch_install.group(0), (
        "torch: exact CPU build"
    )
    # torch is installed before the other pinned dependencies, which then find the pin satisfied.
    assert runs.index(torch_pin) < runs.index("pip install -r")
    assert "pyproject.toml" in runs, "the other pins come from pyproject.toml, not a second list"

    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for instruction, args in steps:
        if instruction == "COPY":
            *sources, _ = args.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert source.rstrip("/") not in ignored, f"COPY {source}: excluded by .dockerignore"
    assert "models" in ignored and ".venv" in ignored and ".git" in ignored

    users = [args for instruction, args in steps if instruction == "USER"]
    assert users and users[-1] not in {"root", "0"}
    (cmd,) = [json.loads(args) for instruction, args in steps if instruction == "CMD"]
    assert cmd[:4] == ["triage", "serve", "--model", "/app/models"]
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert ("EXPOSE", "8000") in steps
