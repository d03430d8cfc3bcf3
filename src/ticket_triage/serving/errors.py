"""Every error leaves the service as the same JSON shape, naming what was wrong and never a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ticket_triage.audit import SpoolFullError
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

#: What each status means on the routes that document it (see :func:`documented`).
_DESCRIPTIONS = {
    401: "No key, or an unknown key.",
    403: "The key's role may not call this operation.",
    404: "No such resource.",
    409: "The request conflicts with the resource's state.",
    413: "The body (or batch) is over the size the service accepts.",
    422: "The fields at fault are named in `error.fields`.",
    503: "A dependency is unreachable, or the service is shutting down; retry later.",
}


def documented(*codes: int, meaning: Mapping[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each error status with the one error shape and what it means there.

    ``meaning`` gives a route's own wording of a status (what its 404 or 409 is about); it also adds the
    status when ``codes`` does not list it.
    """
    meaning = meaning or {}
    return {
        code: {"model": ErrorResponse, "description": meaning.get(code, _DESCRIPTIONS.get(code, ""))}
        for code in sorted({*codes, *meaning})
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


def unavailable(exc: SpoolFullError) -> HTTPException:
    """503 with Retry-After: the database is down and the spool full, so this answer could not be kept."""
    return HTTPException(503, str(exc), headers={"Retry-After": str(max(1, round(exc.retry_after_seconds)))})


def error_response(
    status_code: int, code: str, message: str, fields: Iterable[FieldError] = (), headers: dict | None = None
) -> JSONResponse:
    body = ErrorResponse(error=ErrorDetail(code=code, message=message, fields=list(fields)))
    return JSONResponse(body.model_dump(), status_code=status_code, headers=headers)


def _echo(name: str) -> str:
    """A caller's key name fit to echo: short, and with lone surrogates escaped (UTF-8 cannot carry them)."""
    name = name if len(name) <= 100 else name[:100] + "…"
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


def field_path(loc: Sequence[Any]) -> str:
    """``("body", "tickets", 3, "subject")`` -> ``tickets[3].subject``; the body itself is ``body``."""
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{_echo(str(part))}" if out else _echo(str(part))
    return out or (str(loc[0]) if loc else "body")


def _unparsable_body(cause: BaseException | None) -> str | None:
    """Why FastAPI could not read a JSON body that is no syntax error (it answers those with a bare 400)."""
    if isinstance(cause, RecursionError):
        return "nested too deeply to read"
    if isinstance(cause, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(cause, ValueError) and "digits" in str(cause):  # past sys.get_int_max_str_digits()
        return "an integer too long to read (integers must fit in signed 64 bits)"
    return None


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
        reason = _unparsable_body(exc.__cause__) if exc.status_code == 400 else None
        if reason is not None:
            return error_response(
                422, "malformed_json", f"malformed JSON: {reason}", [FieldError(field="body", message=reason)]
            )
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
