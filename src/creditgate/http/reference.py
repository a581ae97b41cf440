"""The API reference: the OpenAPI document that /docs, /redoc and generated clients read.

Routes state their own part where they are declared: a summary, a description (the route's
docstring), the problems they can answer with (`errors(...)`, from the domain's named
failures), and answer models whose every field is described (`documented(...)`). Here the
document is completed with what every operation shares: the problems any request can meet
(a malformed body, a missing key, an overloaded server), what its Idempotency-Key does, and
request examples shown on the media type as well as on the schema.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Iterable
from typing import Any, Union, get_args, get_origin

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict
from pydantic.fields import FieldInfo

from creditgate.domain.errors import AmountOverflow, CreditgateError, IdempotencyConflict
from creditgate.http.problems import IDEMPOTENCY_HEADER, PROBLEM_JSON, Problem, status_of_kind

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

# What each status means, whatever the operation.
STATUS_MEANINGS = {
    400: "Malformed request",
    401: "Missing, malformed, unknown or revoked API key",
    403: "Not allowed for this tenant (e.g. moving the clock of a live tenant)",
    404: "No such object for this tenant",
    408: "The request body did not all arrive in time",
    409: "Conflict with an earlier request or with the object's state",
    413: "Request body too large",
    415: "The body is not declared as JSON (Content-Type: application/json)",
    422: "Invalid input; `field` names it",
    429: "Too many failed authentications from this address; retry after Retry-After seconds",
    502: "The payment provider refused or could not be reached; nothing was granted",
    503: "Overloaded, or the database is unavailable; retry after Retry-After seconds",
}

# The problems any request can meet, by status: (code, when).
COMMON_CODES: dict[int, list[tuple[str, str]]] = {
    400: [
        ("malformed_json", "the body is not valid JSON"),
        ("malformed_request", "e.g. a Content-Length that is not a valid length"),
    ],
    401: [("unauthenticated", "no API key, or one that is malformed, unknown or revoked")],
    404: [("not_found", "no such object (or no such endpoint)")],
    408: [("body_timeout", "the body did not all arrive in time")],
    413: [("body_too_large", "the body is larger than the server accepts")],
    415: [("unsupported_media_type", "send the body as JSON, Content-Type: application/json")],
    422: [("invalid_input", "a value is out of bounds or malformed; `errors` lists each")],
    429: [("too_many_requests", "too many failed authentications from this address")],
    503: [
        ("overloaded", "the server is at its in-flight limit"),
        ("database_unavailable", "the database does not answer"),
    ],
}
_IDEMPOTENCY_REQUIRED = (
    "idempotency_key_required",
    "this request moves money or creates a billable object: send an Idempotency-Key",
)
_IDEMPOTENCY_CONFLICT = (
    IdempotencyConflict.code,
    "the Idempotency-Key was used before with a different request",
)

# Operations whose body or query names objects that may not exist, beyond those a route
# declares: a 404 is documented for them, as for every path with an object in it.
_BODY_LOOKUPS = {"/v1/authorizations", "/v1/charges", "/v1/rate-cards", "/v1/reports/margin"}
_BODY_LOOKUPS |= {"/v1/plans", "/v1/packs", "/v1/campaigns"}  # billing: the body names an asset
_BODY_LOOKUPS |= {"/v1/reports/revenue"}  # the query may name a customer
_BODY_LOOKUPS |= {"/v1/portal/sessions"}  # the body names a customer

X_CODES = "x-problem-codes"


# When a named failure happens, for those whose class does not say so itself.
_WHEN = {
    "amount_overflow": "the amount would take a balance or total past the largest held",
    "already_exists": "an object with this id or code exists",
    "hold_already_settled": "the authorization was settled already",
    "hold_already_voided": "the authorization was voided already",
    "hold_expired": "the authorization expired before it was settled",
    "hold_not_pending": "the authorization was resolved already",
    "lot_not_active": "the lot is expired or voided already",
    "api_key_revoked": "the key is revoked already",
    "already_subscribed": "the customer has an active subscription: change its plan",
    "subscription_not_active": "the subscription is canceled",
    "pack_not_active": "the pack is not on sale",
    "provider_not_configured": "the tenant has not set up this payment provider",
    "campaign_expired": "the campaign has ended",
    "webhook_endpoint_disabled": "the endpoint is disabled",
    "unknown_hold": "no such authorization",
    "unknown_lot": "no such grant (lot)",
    "unknown_api_key": "no such API key",
}


def _explanation(error: type[CreditgateError]) -> str:
    if error.code in _WHEN:
        return _WHEN[error.code]
    own = error.__dict__.get("__doc__")  # its own docstring, not one it inherits
    if own:
        text = inspect.cleandoc(own).split("\n\n")[0].replace("\n", " ").rstrip(".")
        return text[0].lower() + text[1:]
    if error.code.startswith("unknown_"):
        return "no such " + error.code.removeprefix("unknown_").replace("_", " ")
    return error.code.replace("_", " ")


def errors(*failures: type[CreditgateError] | tuple[int, str, str]) -> dict[int | str, Any]:
    """The `responses=` of a route: the problems it answers with besides those every request
    can meet, each a domain error class (its status and code) or `(status, code, when)`."""
    by_status: dict[int, list[tuple[str, str]]] = {}
    for failure in failures:
        if isinstance(failure, tuple):
            status, code, when = failure
        else:
            status, code, when = status_of_kind(failure), failure.code, _explanation(failure)
        listed = by_status.setdefault(status, [])
        if code not in (c for c, _ in listed):
            listed.append((code, when))
    return {
        status: {
            "description": STATUS_MEANINGS.get(status, "Failure"),
            "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}},
            X_CODES: [{"code": code, "when": when} for code, when in codes],
        }
        for status, codes in sorted(by_status.items())
    }


# Amounts that add up past the largest a balance holds: any request that moves credit.
MOVES_CREDIT = (AmountOverflow,)


# Answer models as documented ---------------------------------------------------------------

_DOCUMENTED: dict[type[BaseModel], type[BaseModel]] = {}


def _swap(annotation: Any) -> Any:
    """The annotation with every model that has a documented twin replaced by the twin."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _DOCUMENTED.get(annotation, annotation)
    args = get_args(annotation)
    origin = get_origin(annotation)
    if origin is None or not args:
        return annotation
    swapped = tuple(_swap(arg) for arg in args)
    if swapped == args:
        return annotation
    if origin in (Union, types.UnionType):
        return Union[swapped]  # noqa: UP007 - built from a tuple of types
    return origin[swapped if len(swapped) > 1 else swapped[0]]


def documented(
    model: type[BaseModel],
    fields: dict[str, str],
    *,
    example: dict[str, Any] | None = None,
    description: str | None = None,
) -> type[BaseModel]:
    """`model` as the reference shows it: the same fields, types and JSON, each field with
    its description and the whole with an example. Models it holds are shown as their
    documented twins (document those first). The twin only describes an answer: routes
    still answer with the model itself.

    A description of a field the model does not have is refused; a field left without one
    is caught by the OpenAPI lint test."""
    unknown = set(fields) - set(model.model_fields)
    if unknown:
        raise TypeError(f"{model.__name__} has no fields {sorted(unknown)}")
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {"__module__": __name__, "__qualname__": model.__name__}
    for name, info in model.model_fields.items():
        text = fields.get(name)
        annotation = _swap(info.annotation)
        if text is None and annotation is info.annotation:
            continue
        annotations[name] = annotation
        namespace[name] = FieldInfo.merge_field_infos(
            info, **({"description": text} if text is not None else {})
        )
    namespace["__annotations__"] = annotations
    namespace["__doc__"] = description or model.__doc__
    if example is not None:
        namespace["model_config"] = ConfigDict(json_schema_extra={"examples": [example]})
    metaclass: Any = type(model)  # pydantic's: a class statement made at run time
    twin: type[BaseModel] = metaclass(model.__name__, (model,), namespace)
    _DOCUMENTED[model] = twin
    return twin


# The document ------------------------------------------------------------------------------


def _statuses(
    path: str, method: str, declared: Iterable[str], operation: dict[str, Any]
) -> list[int]:
    statuses = {400, 401, 413, 422, 429, 503} | {int(s) for s in declared if s[0] in "45"}
    if "{" in path or path in _BODY_LOOKUPS:
        statuses.add(404)
    if method in ("post", "put"):
        statuses |= {408, 415}
    # A conflict: an Idempotency-Key reused with another request (whatever the method that
    # takes one), or one a route declares.
    if _header(operation) is not None:
        statuses.add(409)
    return sorted(statuses)


def _header(operation: dict[str, Any]) -> dict[str, Any] | None:
    for param in operation.get("parameters", []):
        if param["in"] == "header" and param["name"] == IDEMPOTENCY_HEADER:
            found: dict[str, Any] = param
            return found
    return None


def _idempotency(method: str, operation: dict[str, Any]) -> str:
    header = _header(operation)
    if header is not None and header.get("required"):
        return (
            "**Idempotency:** an `Idempotency-Key` is required: a retry with the same key "
            "answers the first answer and changes nothing again."
        )
    if header is not None:
        return (
            "**Idempotency:** send an `Idempotency-Key` to make a retry safe: the same key "
            "answers the first answer."
        )
    if method in ("get", "head"):
        return "**Idempotency:** a read; safe to repeat."
    if method in ("put", "delete"):
        return "**Idempotency:** idempotent: repeating it leaves the same state."
    return "**Idempotency:** safe to repeat."


def _problem_response(status: int, codes: list[tuple[str, str]]) -> dict[str, Any]:
    lines = "\n".join(f"- `{code}`: {when}" for code, when in codes)
    return {
        "description": f"{STATUS_MEANINGS[status]}. Codes:\n\n{lines}",
        "content": {PROBLEM_JSON: {"schema": dict(PROBLEM_REF)}},
        # The same codes for a generated client to branch on.
        X_CODES: [code for code, _ in codes],
    }


def _complete_errors(path: str, method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    header = _header(operation)
    for status in _statuses(path, method, responses, operation):
        declared = responses.get(str(status), {}).get(X_CODES, [])
        codes = list(COMMON_CODES.get(status, []))
        if status == 400 and header is not None and header.get("required"):
            codes.append(_IDEMPOTENCY_REQUIRED)
        if status == 409 and header is not None:
            codes.append(_IDEMPOTENCY_CONFLICT)
        codes += [(c["code"], c["when"]) for c in declared if c["code"] not in dict(codes)]
        responses[str(status)] = _problem_response(status, codes)


def _media_examples(document: dict[str, Any], operation: dict[str, Any]) -> None:
    """A body's examples on its media type too, where Swagger UI shows them."""
    schemas = document["components"]["schemas"]
    for media in operation.get("requestBody", {}).get("content", {}).values():
        schema = media.get("schema", {})
        refs = [schema, *schema.get("anyOf", [])]
        for ref in refs:
            name = ref.get("$ref", "").removeprefix("#/components/schemas/")
            examples = schemas.get(name, {}).get("examples")
            if examples and "examples" not in media:
                media["examples"] = {
                    f"example {i + 1}" if len(examples) > 1 else "example": {"value": value}
                    for i, value in enumerate(examples)
                }


def document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document completed: every error a problem+json answer naming its codes,
    every operation's idempotency stated, request examples on the media type."""
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem_schema.pop("$defs", {}))
    schemas["Problem"] = problem_schema
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            _complete_errors(path, method, operation)
            description = operation.get("description", "").strip()
            operation["description"] = f"{description}\n\n{_idempotency(method, operation)}"
            _media_examples(doc, operation)
    return doc
