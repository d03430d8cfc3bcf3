"""Every error leaves the service as the same JSON shape, naming what was wrong and never a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ticket_triage.serving.auth import AuthError
from ticket_triage.serving.batcher import BatcherClosedError
from ticket_triage.serving.schemas import ErrorDetail, ErrorResponse, FieldError

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    503: "unavailable",
}


class ApiError(Exception):
    """An error the service raises on purpose, with its status and the fields at fault."""

    def __init__(
        self, status_code: int, message: str, *, code: str | None = None, fields: Sequence[FieldError] = ()
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code or _HTTP_CODES.get(status_code, "error")
        self.message = message
        self.fields = list(fields)


def error_response(
    status_code: int, code: str, message: str, fields: Iterable[FieldError] = (), headers: dict | None = None
) -> JSONResponse:
    body = ErrorResponse(error=ErrorDetail(code=code, message=message, fields=list(fields)))
    return JSONResponse(body.model_dump(), status_code=status_code, headers=headers)


def field_path(loc: Sequence[Any]) -> str:
    """``("body", "tickets", 3, "subject")`` -> ``tickets[3].subject``; the body itself is ``body``."""
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or (str(loc[0]) if loc else "body")


def _describe(error: dict[str, Any]) -> FieldError:
    kind = error.get("type", "")
    loc = tuple(error.get("loc", ()))
    ctx = error.get("ctx") or {}
    if kind == "json_invalid":
        position = loc[1] if len(loc) > 1 else "?"
        return FieldError(
            field="body",
            message=f"malformed JSON at character {position}: {ctx.get('error', 'decode error')}",
        )
    if kind == "missing" and len(loc) == 1 and loc[0] == "body":
        return FieldError(field="body", message="the request body is empty; send a JSON object")
    if kind in ("model_attributes_type", "dict_type") and loc == ("body",):
        return FieldError(
            field="body", message="the body must be a JSON object sent with Content-Type: application/json"
        )
    if kind == "extra_forbidden":
        return FieldError(field=field_path(loc), message="unknown field")
    message = str(error.get("msg", "invalid value"))
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return FieldError(field=field_path(loc), message=message)


def install_error_handlers(app: FastAPI) -> None:
    """Route every failure through one JSON error shape."""

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [_describe(e) for e in exc.errors()]
        code = "malformed_json" if any(e.get("type") == "json_invalid" for e in exc.errors()) else None
        summary = "; ".join(f"{f.field}: {f.message}" for f in fields[:5])
        more = f" (and {len(fields) - 5} more)" if len(fields) > 5 else ""
        return error_response(422, code or "invalid_request", f"invalid request: {summary}{more}", fields)

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status_code, exc.code, exc.message, exc.fields)

    @app.exception_handler(AuthError)
    async def _auth(_: Request, exc: AuthError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(
            exc.status_code, _HTTP_CODES.get(exc.status_code, "error"), str(exc.detail), headers=exc.headers
        )

    @app.exception_handler(BatcherClosedError)
    async def _closing(_: Request, exc: BatcherClosedError) -> JSONResponse:
        return error_response(
            503, "unavailable", f"{exc}; retry on another instance", headers={"Retry-After": "1"}
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "the service failed to answer; the error is logged")
