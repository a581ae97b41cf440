"""Errors in the upstream API's own shape, so that the provider's client reads them.

OpenAI: `{"error": {"message", "type", "code", "param"}}`; Anthropic:
`{"type": "error", "error": {"type", "message"}}`. A decline is 402 in either shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.responses import Response

from creditgate.domain.errors import CreditgateError, RateLimited
from creditgate.http.problems import status_of

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_credits",
    403: "permission_error",
    404: "invalid_request_error",
    408: "timeout",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "invalid_request_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def provider_of(path: str) -> str:
    """The API whose shape a gateway path answers in."""
    return "anthropic" if path.startswith("/gateway/anthropic/") else "openai"


def error_body(provider: str, status: int, code: str, message: str) -> bytes:
    if provider == "anthropic":
        kind = _ANTHROPIC_TYPES.get(status, "api_error")
        doc: object = {"type": "error", "error": {"type": kind, "message": message}}
    else:
        kind = _OPENAI_TYPES.get(status, "api_error")
        doc = {"error": {"message": message, "type": kind, "code": code, "param": None}}
    return json.dumps(doc).encode()


def error_response(
    provider: str,
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(
        error_body(provider, status, code, message),
        status_code=status,
        media_type="application/json",
        headers=dict(headers or {}),
    )


def failure(provider: str, exc: CreditgateError) -> Response:
    """A creditgate error (an unknown customer, a model with no price, a bad key) in the
    provider's shape, with the status the JSON API gives it."""
    headers = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    return error_response(provider, status_of(exc), exc.code, exc.message, headers)
