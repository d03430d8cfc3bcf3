"""A bundle's ``manifest.json`` as a typed, versioned record: read once, checked field by field.

Every field declares how it is read from JSON and written back, so a file written by this code comes back
unchanged (same keys, same order). Keys this version does not know are kept in ``extra`` and written back
too: a manifest read and saved again loses nothing another version recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime
from typing import Any, NamedTuple

from ticket_triage.data.schema import ColumnMap
from ticket_triage.models.conformal import check_alpha
from ticket_triage.models.errors import BundleError
from ticket_triage.models.target import Target
from ticket_triage.routing import RULES

#: The layout of bundles this code reads and writes. 2: one fine-tuned encoder feeds every member (model v2).
FORMAT_VERSION = 2


class _Codec(NamedTuple):
    """How one field goes from JSON (checked, with the field's name in any error) and back."""

    read: Callable[[str, Any], Any]
    write: Callable[[Any], Any]


def _wrong(name: str, want: str, value: Any) -> BundleError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return BundleError(f"manifest field {name!r} must be {want}, got {shown} ({type(value).__name__})")


def _read_text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _wrong(name, "a string", value)
    return value


def _read_integer(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(name, "an integer", value)
    return value


def _read_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong(name, "a number", value)
    return float(value)


def _read_rule(name: str, value: Any) -> str:
    if value not in RULES:
        raise _wrong(name, f"one of {', '.join(RULES)}", value)
    return str(value)


def _read_alpha(name: str, value: Any) -> float:
    number = _read_number(name, value)
    try:
        return check_alpha(number)
    except ValueError:
        raise _wrong(name, "a number strictly between 0 and 1", value) from None


def _read_object(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise _wrong(name, "an object", value)
    return dict(value)


def _read_texts(name: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _wrong(name, "a list of strings", value)
    return tuple(value)


def _read_text_map(name: str, value: Any) -> dict[str, str]:
    return {key: _read_text(f"{name}.{key}", item) for key, item in _read_object(name, value).items()}


def _read_count_map(name: str, value: Any) -> dict[str, int]:
    return {key: _read_integer(f"{name}.{key}", item) for key, item in _read_object(name, value).items()}


def _read_time(name: str, value: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(_read_text(name, value))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _wrong(name, "an ISO 8601 time with its UTC offset", value)
    return moment


def _read_targets(name: str, value: Any) -> dict[Target, tuple[str, ...]]:
    out = {}
    for key, labels in _read_object(name, value).items():
        try:
            target = Target(key)
        except ValueError:
            known = ", ".join(target.value for target in Target)
            raise BundleError(
                f"manifest field {name!r} names an unknown target {key!r} (known: {known})"
            ) from None
        out[target] = _read_texts(f"{name}.{key}", labels)
    return out


_COLUMN_FIELDS = tuple(f.name for f in fields(ColumnMap))


def _read_columns(name: str, value: Any) -> ColumnMap:
    raw = _read_object(name, value)
    unknown = sorted(set(raw) - set(_COLUMN_FIELDS))
    if unknown:
        raise BundleError(f"manifest field {name!r} has unknown keys: {', '.join(unknown)}")
    if "text" not in raw:
        raise BundleError(f"manifest field '{name}.text' is missing")
    scalars = {}
    for key in _COLUMN_FIELDS:
        if key in ("text", "extra") or raw.get(key) is None:
            continue
        scalars[key] = _read_text(f"{name}.{key}", raw[key])
    return ColumnMap(
        text=_read_texts(f"{name}.text", raw["text"]),
        extra=_read_text_map(f"{name}.extra", raw.get("extra", {})),
        **scalars,
    )


def columns_to_json(columns: ColumnMap) -> dict[str, Any]:
    """The manifest's ``columns``: every ColumnMap field, the text columns as a list (as training records
    them, and as ``triage retrain`` reads them back)."""
    return {key: getattr(columns, key) for key in _COLUMN_FIELDS} | {
        "text": list(columns.text),
        "extra": dict(columns.extra),
    }


def _same(value: Any) -> Any:
    return value


def _codec(read: Callable[[str, Any], Any], write: Callable[[Any], Any]) -> Mapping[str, _Codec]:
    """Field metadata naming the field's codec."""
    return {"codec": _Codec(read, write)}


_TEXT = _codec(_read_text, _same)
_INTEGER = _codec(_read_integer, _same)
_NUMBER = _codec(_read_number, _same)
_RULE = _codec(_read_rule, _same)
_ALPHA = _codec(_read_alpha, _same)
_OBJECT = _codec(_read_object, dict)
_TEXTS = _codec(_read_texts, list)
_TEXT_MAP = _codec(_read_text_map, dict)
_COUNT_MAP = _codec(_read_count_map, dict)
_TIME = _codec(_read_time, datetime.isoformat)
_TARGETS = _codec(_read_targets, lambda targets: {str(k): list(v) for k, v in targets.items()})
_COLUMNS = _codec(_read_columns, columns_to_json)


@dataclass(frozen=True)
class Manifest:
    """What a bundle is and how it was made; the fields in the order ``save_bundle`` writes them."""

    format_version: int = field(metadata=_INTEGER)
    #: The bundle's folder name when it was written: UTC training time plus the data fingerprint's start.
    version: str = field(metadata=_TEXT)
    trained_at: datetime = field(metadata=_TIME)
    python: str = field(metadata=_TEXT)
    #: Installed version of every pinned distribution; a bundle only loads beside the same ones.
    libraries: Mapping[str, str] = field(metadata=_TEXT_MAP)
    #: Each target's labels in the column order of its probabilities.
    targets: Mapping[Target, tuple[str, ...]] = field(metadata=_TARGETS)
    #: SHA-256 of every file of the bundle but the manifest.
    files: Mapping[str, str] = field(metadata=_TEXT_MAP)
    data_fingerprint: str = field(metadata=_TEXT)
    routing_threshold: float = field(metadata=_NUMBER)
    #: "learned" or "seed" (see models/training.py).
    weighting: str = field(metadata=_TEXT)
    #: The encoder precision training resolved "auto" to: "fp32" or "bf16".
    precision: str = field(metadata=_TEXT)
    cross_fitting_folds: int = field(metadata=_INTEGER)
    #: The feature configuration trained with, as FeatureConfig dumps it (validated where it is used).
    feature_config: Mapping[str, Any] = field(metadata=_OBJECT)
    feature_names: tuple[str, ...] = field(metadata=_TEXTS)
    #: Rows per split: train, validation, test.
    rows: Mapping[str, int] = field(metadata=_COUNT_MAP)
    # What the caller of training recorded: absent in bundles trained without them.
    data_files: tuple[str, ...] | None = field(default=None, metadata=_TEXTS)
    columns: ColumnMap | None = field(default=None, metadata=_COLUMNS)
    #: For a retrained challenger: its champion and what the merge did with the corrections.
    feedback: Mapping[str, Any] | None = field(default=None, metadata=_OBJECT)
    #: The routing rule training's evaluation chose (routing.py) and the conformal alpha it evaluated at;
    #: absent in bundles from before conformal sets, which route by threshold.
    routing_rule: str | None = field(default=None, metadata=_RULE)
    conformal_alpha: float | None = field(default=None, metadata=_ALPHA)
    #: Keys this version does not know, kept as read so writing the manifest back loses nothing.
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: Any) -> Manifest:
        """Check a parsed manifest.json; a BundleError names the first missing or ill-typed field."""
        if not isinstance(raw, dict):
            raise BundleError(f"the manifest must be a JSON object, got {type(raw).__name__}")
        found = raw.get("format_version")
        if isinstance(found, bool) or found != FORMAT_VERSION:
            raise BundleError(
                f"the manifest has format version {found!r}; this ticket-triage reads format {FORMAT_VERSION}"
            )
        values: dict[str, Any] = {}
        for spec in _coded_fields():
            if spec.name in raw:
                values[spec.name] = spec.metadata["codec"].read(spec.name, raw[spec.name])
            elif spec.default is MISSING:
                raise BundleError(f"manifest field {spec.name!r} is missing")
        known = {spec.name for spec in _coded_fields()}
        return cls(**values, extra={key: value for key, value in raw.items() if key not in known})

    def to_json(self) -> dict[str, Any]:
        """The manifest.json object: the known fields in their order (unset optional ones left out), then
        the unknown keys as read."""
        out = {}
        for spec in _coded_fields():
            value = getattr(self, spec.name)
            if value is not None or spec.default is MISSING:
                out[spec.name] = spec.metadata["codec"].write(value)
        return out | {key: value for key, value in self.extra.items() if key not in out}


def _coded_fields() -> tuple[Any, ...]:
    return tuple(spec for spec in fields(Manifest) if "codec" in spec.metadata)
