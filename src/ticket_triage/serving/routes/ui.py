"""``/ui``: the reviewers' web page, served by the service itself (no front-end build step).

The page needs no key: it holds no data. The reviewer's key stays in the browser (sessionStorage) and goes
only in request headers of the JSON API calls, which check it as they would for any other client.
"""

from __future__ import annotations

import hashlib
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from ticket_triage.package_files import package_path
from ticket_triage.serving.errors import ApiError, documented

router = APIRouter(tags=["ui"])

_PACKAGE = package_path("ticket_triage.serving")
TEMPLATES_DIR = _PACKAGE / "templates"
STATIC_DIR = _PACKAGE / "static"

_MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}

# Only the files present at start-up are served, looked up by exact name: a request can never reach a
# path outside the folder, whatever it contains ("..", encoded slashes).
_STATIC: dict[str, FilePath] = {
    path.name: path for path in sorted(STATIC_DIR.glob("*")) if path.is_file() and path.suffix in _MEDIA_TYPES
}

# A content hash in each asset URL, so a new release is never run with a cached old script.
_ASSET_VERSION = {name: hashlib.sha256(path.read_bytes()).hexdigest()[:12] for name, path in _STATIC.items()}

#: The page loads only its own script and style and talks only to this service.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_templates = Jinja2Templates(directory=str(TEMPLATES_DIR))


def _asset_url(root_path: str, name: str) -> str:
    return f"{root_path}/ui/static/{name}?v={_ASSET_VERSION[name]}"


@router.get("/ui", response_class=HTMLResponse, summary="Reviewer web page")
async def reviewer_page(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    context = {
        "api_base": root,
        "script_url": _asset_url(root, "ui.js"),
        "style_url": _asset_url(root, "ui.css"),
    }
    return _templates.TemplateResponse(request, "ui.html", context, headers=_PAGE_HEADERS)


@router.get(
    "/ui/static/{name}",
    name="ui_static",
    response_class=FileResponse,
    responses={
        200: {
            "description": "The page's script or style sheet.",
            "content": {
                "text/javascript": {"schema": {"type": "string"}},
                "text/css": {"schema": {"type": "string"}},
            },
        },
        **documented(meaning={404: "No asset of that name.", 422: "A name longer than 200 characters."}),
    },
    summary="Reviewer page assets",
)
async def reviewer_asset(name: Annotated[str, Path(max_length=200)]) -> FileResponse:
    path = _STATIC.get(name)
    if path is None:
        raise ApiError(404, f"no UI asset named {name!r}", code="not_found")
    return FileResponse(
        path,
        media_type=_MEDIA_TYPES[path.suffix],
        # Revalidate each time (cheap: ETag / Last-Modified); the ?v= hash changes with the content.
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )
