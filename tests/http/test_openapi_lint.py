"""The API reference is complete: every operation says what it does, shows an example of what
it takes and what it answers, and lists its errors; every field of every schema is described.

Each test names every offending operation or field, so a gap is fixed in one go."""

from __future__ import annotations

from typing import Any, get_args

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, ValidationError

from creditgate.api import Creditgate
from creditgate.server.app import create_app

PROBLEM_JSON = "application/problem+json"
Document = dict[str, Any]


@pytest.fixture(scope="module")
def document() -> Document:
    # The document depends on the routes only: build it over a throwaway database.
    cg = Creditgate("sqlite://")
    try:
        return create_app(cg).openapi()
    finally:
        cg.close()


def _operations(document: Document) -> list[tuple[str, Document]]:
    return [
        (f"{method.upper()} {path}", operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def _resolve(document: Document, schema: Document) -> Document:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = document["components"]["schemas"][name]
    return schema


def _has_example(document: Document, content: Document) -> bool:
    """An example on the media type, or on the schema it names."""
    for media in content.values():
        if media.get("example") is not None or media.get("examples"):
            return True
        schema = media.get("schema") or {}
        candidates = [schema, *schema.get("anyOf", []), *schema.get("oneOf", [])]
        if any(_resolve(document, s).get("examples") for s in candidates):
            return True
    return False


def _report(problems: list[str]) -> None:
    assert not problems, f"{len(problems)} gaps in the API reference:\n" + "\n".join(problems)


def test_every_operation_has_a_summary_and_a_description(document: Document) -> None:
    problems = []
    for name, operation in _operations(document):
        if not operation.get("summary", "").strip():
            problems.append(f"{name}: no summary")
        # The paragraph on idempotency is added to every operation: the route says the rest.
        own = operation.get("description", "").split("**Idempotency:**")[0]
        if not own.strip():
            problems.append(f"{name}: no description")
    _report(problems)


def test_every_body_has_a_request_example(document: Document) -> None:
    problems = []
    for name, operation in _operations(document):
        body = operation.get("requestBody")
        if body is not None and not _has_example(document, body.get("content", {})):
            problems.append(f"{name}: no request example")
    _report(problems)


def test_every_success_has_a_response_example(document: Document) -> None:
    problems = []
    for name, operation in _operations(document):
        for status, response in operation["responses"].items():
            if not status.startswith("2") or status == "204":
                continue
            if not _has_example(document, response.get("content", {})):
                problems.append(f"{name}: no example of its {status} answer")
    _report(problems)


def test_every_operation_lists_its_errors_with_their_codes(document: Document) -> None:
    problems = []
    for name, operation in _operations(document):
        errors = {s: r for s, r in operation["responses"].items() if s[0] in "45"}
        if not errors:
            problems.append(f"{name}: no error responses")
        for status, response in errors.items():
            if PROBLEM_JSON not in response.get("content", {}):
                problems.append(f"{name}: {status} is not a problem+json answer")
            if "`" not in response.get("description", ""):
                problems.append(f"{name}: {status} names no problem `code`")
        # An object named in the path has its own code when it is not there (a path naming
        # only a fixed choice, such as a lot kind, names no object).
        objects = [
            p
            for p in operation.get("parameters", [])
            if p["in"] == "path" and "enum" not in _resolve(document, p["schema"])
        ]
        missing = errors.get("404", {}).get("description", "")
        if objects and "`unknown_" not in missing:
            problems.append(f"{name}: 404 names no `unknown_…` code for the object in its path")
    _report(problems)


def _properties(document: Document) -> list[tuple[str, Document]]:
    found = []

    def walk(where: str, schema: Document) -> None:
        for prop, sub in (schema.get("properties") or {}).items():
            found.append((f"{where}.{prop}", sub))
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                walk(where, schema[key])
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in schema.get(key, []):
                walk(where, sub)

    for name, schema in document["components"]["schemas"].items():
        walk(name, schema)
    return found


def test_every_schema_field_has_a_description(document: Document) -> None:
    problems = [
        f"{where}: no description"
        for where, schema in _properties(document)
        if not schema.get("description", "").strip()
    ]
    _report(problems)


def test_every_parameter_has_a_description(document: Document) -> None:
    problems = [
        f"{name}: parameter {param['in']} {param['name']} has no description"
        for name, operation in _operations(document)
        for param in operation.get("parameters", [])
        if not param.get("description", "").strip()
    ]
    _report(problems)


def test_component_names_are_the_models_own(document: Document) -> None:
    """A model documented twice would show as a module-qualified name in generated clients."""
    problems = [
        f"{name}: a qualified component name"
        for name in document["components"]["schemas"]
        if "__" in name
    ]
    _report(problems)


def _models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models(arg)]


def _examples(model: type[BaseModel]) -> list[Any]:
    extra = model.model_config.get("json_schema_extra")
    return list(extra.get("examples", [])) if isinstance(extra, dict) else []


def test_every_example_is_what_the_api_takes_and_answers() -> None:
    """A request example passes the body's own validation; an answer example is exactly what
    its model would send (every field present, none unknown, values as serialized)."""
    cg = Creditgate("sqlite://")
    try:
        contexts = iter_route_contexts(create_app(cg).routes)
        routes = [c.original_route for c in contexts if isinstance(c.original_route, APIRoute)]
    finally:
        cg.close()
    assert len(routes) > 50
    problems = []
    for route in routes:
        name = f"{sorted(route.methods)[0]} {route.path} ({route.name})"
        for param in route.dependant.body_params:
            for model in _models(param.field_info.annotation):
                for example in _examples(model):
                    try:
                        model.model_validate(example)
                    except ValidationError as exc:
                        problems.append(f"{name}: request example refused: {exc}")
        for model in _models(route.response_model):
            for example in _examples(model):
                try:
                    sent = model.model_validate(example).model_dump(mode="json")
                except ValidationError as exc:
                    problems.append(f"{name}: answer example invalid: {exc}")
                    continue
                if sent != example:
                    problems.append(f"{name}: answer example is not as {model.__name__} sends it")
    _report(problems)
