"""Errors as RFC 9457 problem details (`application/problem+json`), mapped in one place."""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response
from starlette.routing import Match

from creditgate.domain.errors import (
    Conflict,
    CreditgateError,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthenticated,
    Unavailable,
    UpstreamFailed,
)
from creditgate.storage.database import is_unavailable

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = 1

log = logging.getLogger("creditgate.http")

# Where the HTTP API names an input differently from the services.
FIELD_NAMES = {"external_id": "id", "lot": "grant"}

IDEMPOTENCY_HEADER = "Idempotency-Key"
# Where a missing required Idempotency-Key shows in a validation error.
_IDEMPOTENCY_KEY = ("header", IDEMPOTENCY_HEADER)

_CODES_BY_STATUS = {
    400: "malformed_request",
    401: "unauthenticated",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "too_many_requests",
    503: "unavailable",
}


# The HTTP status of each kind of failure (a class and its subclasses), the one place
# where domain and service errors meet HTTP. Any other `CreditgateError` is a 400.
STATUS_BY_KIND: dict[type[CreditgateError], int] = {
    InvalidInput: 422,
    NotFound: 404,
    Unauthenticated: 401,
    Forbidden: 403,
    Conflict: 409,
    RateLimited: 429,
    UpstreamFailed: 502,
    Unavailable: 503,
}


def status_of(exc: CreditgateError) -> int:
    """The HTTP status of a failure: that of the nearest kind it is in `STATUS_BY_KIND`."""
    return status_of_kind(type(exc))


def status_of_kind(error: type[CreditgateError]) -> int:
    """The HTTP status of a class of failure (what the API reference lists it under)."""
    for kind in error.__mro__:
        status = STATUS_BY_KIND.get(kind)
        if status is not None:
            return status
    return 400


class FieldProblem(BaseModel):
    field: str | None = Field(
        description="The input at fault, as a dotted path (`events.3.amount`); null: the "
        "request as a whole"
    )
    detail: str = Field(description="What is wrong with it, for a person to read")


class Problem(BaseModel):
    """A failure a caller can act on: `code` is stable, `field` names the input at fault."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "urn:creditgate:problem:unknown_customer",
                    "title": "Unknown customer",
                    "status": 404,
                    "detail": "customer 'cust_41' does not exist",
                    "code": "unknown_customer",
                    "field": "customer",
                }
            ]
        }
    )

    type: str = Field(description="`urn:creditgate:problem:<code>` (RFC 9457)")
    title: str = Field(description="The code in words")
    status: int = Field(description="The HTTP status")
    detail: str = Field(description="What went wrong in this case, for a person to read")
    code: str = Field(description="The stable, machine-readable code: branch on it")
    field: str | None = Field(
        None, description="The input at fault (a body field, parameter or header); null: none"
    )
    errors: list[FieldProblem] | None = Field(
        None, description="Every failing input, on request validation (422); absent otherwise"
    )

    @model_serializer(mode="wrap")
    def _without_empty_errors(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("errors") is None:
            data.pop("errors", None)
        return data


def problem(
    status: int,
    code: str,
    detail: str,
    field: str | None = None,
    *,
    errors: list[FieldProblem] | None = None,
) -> Problem:
    return Problem(
        type=f"urn:creditgate:problem:{code}",
        title=code.replace("_", " ").capitalize(),
        status=status,
        detail=detail,
        code=code,
        field=field,
        errors=errors,
    )


def from_error(exc: CreditgateError) -> Problem:
    field = FIELD_NAMES.get(exc.field, exc.field) if exc.field else None
    return problem(status_of(exc), exc.code, exc.message, field)


def problem_response(p: Problem, headers: Mapping[str, str] | None = None) -> Response:
    extra = dict(headers or {})
    if p.status == 401:
        extra.setdefault("WWW-Authenticate", 'Bearer realm="creditgate"')
    if p.status in (429, 503):
        extra.setdefault("Retry-After", str(RETRY_AFTER_SECONDS))
    return Response(
        p.model_dump_json(),
        status_code=p.status,
        headers=extra,
        media_type=PROBLEM_JSON,
    )


def field_of(loc: Sequence[Any]) -> str | None:
    """`("body", "events", 3, "amount")` -> `"events.3.amount"`; the location kind is dropped,
    but for the body as a whole (missing, or not a JSON object), which is `"body"`."""
    if tuple(loc) == ("body",):
        return "body"
    parts = list(loc[1:]) if loc and loc[0] in ("body", "query", "path", "header") else list(loc)
    # An input whose own name is empty (an extra `""` member) is named by where it is.
    return ".".join(str(p) for p in parts) or (str(loc[0]) if loc else None)


def validation_problem(errors: Sequence[Any]) -> Problem:
    fields = []
    for err in errors:
        field = field_of(err.get("loc", ()))
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        fields.append(FieldProblem(field=field, detail=f"{field}: {message}" if field else message))
    if any(err.get("type") == "json_invalid" for err in errors):
        return problem(400, "malformed_json", "the request body is not valid JSON")
    if any(
        err.get("type") == "missing" and tuple(err.get("loc", ())) == _IDEMPOTENCY_KEY
        for err in errors
    ):
        return problem(
            400,
            "idempotency_key_required",
            "this request moves money or creates a billable object: send "
            "`Idempotency-Key: <unique string per logical operation>`, and the same key "
            "when retrying it",
            IDEMPOTENCY_HEADER,
        )
    # A body that was not declared as JSON reaches validation as raw bytes.
    if any(
        tuple(err.get("loc", ())) == ("body",) and isinstance(err.get("input"), bytes)
        for err in errors
    ):
        return problem(
            415,
            "unsupported_media_type",
            "send the body as JSON, with Content-Type: application/json",
        )
    first = fields[0] if fields else FieldProblem(field=None, detail="invalid request")
    return problem(422, "invalid_input", first.detail, first.field, errors=fields)


async def _creditgate_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CreditgateError)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    return problem_response(from_error(exc), headers)


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return problem_response(validation_problem(exc.errors()))


@functools.cache
def template_pattern(path: str) -> re.Pattern[str]:
    """What a route template such as `/v1/charges/{charge}/refunds` matches, each path
    parameter captured as FastAPI's router reads it (one segment)."""
    return re.compile(re.sub(r"\\\{[^/]+?\\\}", "([^/]+)", re.escape(path)))


def _allowed_methods(request: Request, fallback: str) -> str:
    """Every method the API serves at this path (the router reports only one route's)."""
    path = request.scope["path"]
    methods = {
        method.upper()
        for template, operations in request.app.openapi()["paths"].items()
        if template_pattern(template).fullmatch(path)
        for method in operations
    }
    return ", ".join(sorted(methods)) or fallback


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _CODES_BY_STATUS.get(exc.status_code, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        moved = _slash_redirect(request)
        if moved is not None:
            return moved
        detail = "no such endpoint"
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request, headers.get("Allow", ""))
        detail = f"{request.method} is not allowed here; use {headers['Allow']}"
    return problem_response(problem(exc.status_code, code, detail), headers)


def _slash_redirect(request: Request) -> Response | None:
    """The path with its trailing slash added or taken away, when a route serves that.

    Starlette's own redirect (turned off: `redirect_slashes=False`) builds an absolute
    `Location` from the Host header, which the client chose; this one is relative.
    """
    path = request.scope["path"]
    if path == "/":
        return None
    other = {**request.scope, "path": path.rstrip("/") if path.endswith("/") else path + "/"}
    if not any(route.matches(other)[0] != Match.NONE for route in request.app.router.routes):
        return None
    # One leading slash: `//host/...` would be read as another host.
    location = "/" + quote(other["path"]).lstrip("/")
    if query := request.scope.get("query_string"):
        location += "?" + query.decode("latin-1")
    return RedirectResponse(location, status_code=307)


async def _database_unavailable(_request: Request, exc: Exception) -> Response:
    log.warning("database unavailable", extra={"error": type(exc).__name__})
    return problem_response(
        problem(503, "database_unavailable", "the database is unavailable; retry shortly")
    )


async def _database_error(request: Request, exc: Exception) -> Response:
    # A failover's errors are not all OperationalErrors (a closed connection is an
    # InterfaceError; a demoted primary answers read-only): each is a 503, never a 500.
    if is_unavailable(exc):
        return await _database_unavailable(request, exc)
    return await _internal_error(request, exc)


async def _internal_error(_request: Request, exc: Exception) -> Response:
    log.error("unhandled error", exc_info=exc)
    return problem_response(problem(500, "internal_error", "an unexpected error occurred"))


def install(app: FastAPI) -> None:
    app.add_exception_handler(CreditgateError, _creditgate_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(PoolTimeout, _database_unavailable)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _internal_error)
