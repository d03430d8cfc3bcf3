"""The OpenAPI document is the contract: every status and content type the service returns is in it.

Part one reads the document; part two has schemathesis generate requests from it and send them to a real
server with each role's key, checking that no answer is a 5xx, every answer matches what the document says
for its status (code, content type and body schema), and every request that breaks the document is refused.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import requests
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from tests.integration.conftest import ADMIN_KEY, PREDICT_KEY, REVIEW_KEY, running_server

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
ROLE_KEYS = {"predict": PREDICT_KEY, "review": REVIEW_KEY, "admin": ADMIN_KEY}
#: Generated cases per operation and role: enough to reach each documented refusal, few enough that the
#: whole run takes about a minute.
MAX_EXAMPLES = 12
#: A reload loads the whole bundle again (seconds each): two are enough to see its answers.
FEWER_EXAMPLES = {"POST /admin/reload": 2}


def _document(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


def _content(operation: dict[str, Any], status: str) -> set[str]:
    return set(operation["responses"].get(status, {}).get("content", {}))


def test_every_operation_documents_its_refusals_in_the_error_shape(client: TestClient) -> None:
    document = _document(client)
    assert "HTTPValidationError" not in document["components"]["schemas"]  # FastAPI's 422 shape, never sent
    missing = []
    for method, path, operation in _operations(document):
        name = f"{method} {path}"
        expected: set[str] = set()
        if operation.get("security"):
            expected |= {"401", "403"}
        if operation.get("parameters") or "requestBody" in operation:
            expected.add("422")
        if method == "POST":
            expected.add("413")  # the body limit answers before routing, body or not
        for status in sorted(expected):
            if status not in operation["responses"]:
                missing.append(f"{name}: no {status}")
            elif _content(operation, status) != {"application/json"}:
                missing.append(f"{name}: {status} is documented as {_content(operation, status)}")
            else:
                ref = operation["responses"][status]["content"]["application/json"]["schema"]["$ref"]
                if not ref.endswith("/ErrorResponse"):
                    missing.append(f"{name}: {status} has schema {ref}")
    assert not missing, "\n".join(missing)


def test_non_json_answers_are_documented_with_their_media_types(client: TestClient) -> None:
    operations = {f"{m} {p}": op for m, p, op in _operations(_document(client))}
    assert _content(operations["GET /reviews/export"], "200") == {"text/csv", "application/x-ndjson"}
    assert _content(operations["GET /ui"], "200") == {"text/html"}
    assert _content(operations["GET /monitoring/drift/report"], "200") == {"text/html"}
    assert _content(operations["GET /monitoring/drift/report"], "409") == {"application/json"}
    assert _content(operations["GET /metrics"], "200") == {"text/plain"}
    assert _content(operations["GET /ui/static/{name}"], "200") == {"text/javascript", "text/css"}
    assert "204" in operations["POST /reviews/claim"]["responses"]
    # And the answers really are of those types.
    assert client.get("/metrics").headers["content-type"].startswith("text/plain")
    assert client.get("/ui").headers["content-type"].startswith("text/html")


def test_every_parameter_has_documented_bounds(client: TestClient) -> None:
    """A number without both bounds, or a free string without a length, is an edge nobody decided."""
    unbounded = []
    for method, path, operation in _operations(_document(client)):
        for parameter in operation.get("parameters", []):
            schema = parameter["schema"]
            branches = schema.get("anyOf", [schema])
            for branch in branches:
                kind = branch.get("type")
                if kind == "integer" and not ("minimum" in branch and "maximum" in branch):
                    unbounded.append(f"{method} {path} {parameter['name']}: {branch}")
                if kind == "string" and not {"enum", "format", "maxLength"} & set(branch):
                    unbounded.append(f"{method} {path} {parameter['name']}: {branch}")
    assert not unbounded, "\n".join(unbounded)


@dataclass
class Tally:
    """What the schemathesis run did, per role, printed whatever the outcome."""

    operations: set[str] = field(default_factory=set)
    cases: collections.Counter[str] = field(default_factory=collections.Counter)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        statuses = ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items()))
        per_role = ", ".join(f"{role} {n}" for role, n in self.cases.items())
        return (
            f"schemathesis {schemathesis.__version__}: {len(self.operations)} operations, "
            f"{sum(self.cases.values())} cases ({per_role}), {len(self.failures)} failures; "
            f"statuses {statuses}"
        )


def _takes_input(operation: Any) -> bool:
    return bool(len(operation.query) or len(operation.path_parameters) or len(list(operation.body)))


def _run(
    schema: Any, operation: Any, role: str, key: str, base_url: str, tally: Tally, *, negative: bool = False
) -> None:
    """Positive: the document's own examples once each (they reach the 200s), then generated cases.
    Negative: requests that break the document, which must all be refused with a 4xx."""
    label = operation.label
    # The same key in both headers: a generated value in the other one would make it two different keys.
    headers = {"Authorization": f"Bearer {key}", "X-API-Key": key}
    checks = [*CHECKS, negative_data_rejection] if negative else CHECKS
    who = f"{role} (negative)" if negative else role

    def send(case: schemathesis.Case) -> None:
        tally.cases[who] += 1
        try:
            response = case.call_and_validate(base_url=base_url, headers=headers, checks=checks, timeout=120)
        except FailureGroup as exc:
            tally.failures.append(f"[{who}] {label}: {exc}")
            return
        except requests.RequestException as exc:
            tally.failures.append(f"[{who}] {label}: no answer ({exc!r})")
            return
        tally.statuses[response.status_code] += 1

    # Without input every generated case is the same request: one is enough.
    count = FEWER_EXAMPLES.get(label, MAX_EXAMPLES) if _takes_input(operation) else 1
    if negative:
        runs = [(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE), count)]
    else:
        runs = [(strategy, 1) for strategy in schema.get_strategies_from_examples(operation)]
        runs.append((operation.as_strategy(), count))
    for strategy, examples in runs:
        hypothesis.settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )(hypothesis.given(case=strategy)(send))()
    tally.operations.add(label)


def test_schemathesis_finds_no_server_error_and_no_schema_violation(models_dir: Path, tmp_path: Path) -> None:
    """Every role's key on every operation; then, with the admin key (which passes every role check, so
    validation is what answers), requests that violate the document."""
    tally = Tally()
    # Every answer routed to review, so the review operations have items to list, claim and export.
    with running_server(
        models_dir, tmp_path / "server.log", TRIAGE_ROUTING_THRESHOLD="0.999", TRIAGE_ROUTING_RULE="threshold"
    ) as server:
        schema = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        for role, key in ROLE_KEYS.items():
            for operation in operations:
                _run(schema, operation, role, key, server.base_url, tally)
        for operation in filter(_takes_input, operations):
            _run(schema, operation, "admin", ADMIN_KEY, server.base_url, tally, negative=True)
    print("\n" + tally.summary())
    for failure in tally.failures[:20]:
        print(failure)
    assert len(tally.operations) == len(operations) >= 17
    assert not [code for code in tally.statuses if code >= 500]
    assert tally.failures == []
    # The run reached both sides of the contract: answers and refusals.
    assert {200, 403, 404, 422} <= set(tally.statuses)
