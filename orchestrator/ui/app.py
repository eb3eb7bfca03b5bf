"""The review UI's routes: one page per URL, every page also as JSON (``.json`` suffix or ``?format=json``).

Server-rendered with Jinja2 (autoescape on: captions, notes and names are untrusted text); htmx and uPlot are served
from ``static/``; nothing is fetched from elsewhere at run time. Images come only through artifact URIs the database
records (addressed by the sample's or checkpoint's id, never by a path from the request). Every write is a POST that
carries the page's CSRF token; no GET changes anything. With an access token set, every request must carry it (a
cookie set by the first ``?token=`` visit, or an ``Authorization: Bearer`` header).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from orchestrator.errors import NotFoundError, OrchestratorError
from orchestrator.tracking.store import TrackingStore
from orchestrator.ui import queries
from orchestrator.ui.images import IMMUTABLE, ArtifactCache, placeholder_svg, reason_of

HERE = Path(__file__).resolve().parent
TOKEN_COOKIE = "orchestrator_ui_token"
CSRF_HEADER = "x-csrf-token"


def _templates() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = lambda v, digits=2: "" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else v)
    env.filters["with_page"] = lambda params, page: urlencode(
        [(k, v) for k, v in params.multi_items() if k != "page"] + [("page", str(page))])
    env.filters["bytes"] = lambda n: (f"{n / 1048576:.1f} MiB" if n >= 1048576 else
                                      f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B")
    env.filters["pretty"] = lambda v: json.dumps(v, indent=2, sort_keys=True, default=str)
    env.filters["when"] = lambda v: (v or "")[:19].replace("T", " ")
    return env


class TokenGate(BaseHTTPMiddleware):
    """Every request carries the access token: a ``?token=`` visit sets it as a cookie and drops it from the URL."""

    def __init__(self, app: Any, token: str) -> None:
        super().__init__(app)
        self.token = token

    def _matches(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self.token.encode())

    async def dispatch(self, request: Request, call_next: Callable) -> Response:
        given = request.query_params.get("token")
        if self._matches(given):
            query = "&".join(f"{k}={v}" for k, v in request.query_params.multi_items() if k != "token")
            response = RedirectResponse(request.url.path + (f"?{query}" if query else ""), status_code=303)
            response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
            return response
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip() or None
        if self._matches(request.cookies.get(TOKEN_COOKIE)) or self._matches(bearer):
            return await call_next(request)
        return Response("this UI needs its access token: open it once with ?token=…\n", status_code=401,
                        media_type="text/plain")


class ReviewApp:
    """The pages over one tracking database; artifacts are fetched through the stores their URIs name."""

    def __init__(self, database_url: str | None, *, cache_dir: Path, token: str | None = None) -> None:
        self.store = TrackingStore(database_url)
        self.cache = ArtifactCache(cache_dir)
        self.templates = _templates()
        self.csrf = secrets.token_urlsafe(32)  # one per server process; forms and htmx send it back
        self.token = token

    # ---- plumbing --------------------------------------------------------------------------------------------------

    def render(self, request: Request, template: str, data: dict[str, Any], *, status: int = 200) -> Response:
        if wants_json(request):
            return JSONResponse(json.loads(json.dumps(data, default=str)), status_code=status)
        page = self.templates.get_template(template).render(request=request, csrf=self.csrf, json_url=json_url(request),
                                                            **data)
        return HTMLResponse(page, status_code=status)

    def failure(self, request: Request, error: OrchestratorError) -> Response:
        status = 404 if isinstance(error, NotFoundError) else 400
        data = {"error": error.message, "hint": error.hint}
        return self.render(request, "error.html", data, status=status)

    def page(self, template: str, build: Callable[[Request], dict[str, Any]]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            try:
                return self.render(request, template, build(request))
            except OrchestratorError as error:
                return self.failure(request, error)
        return endpoint

    # ---- images and downloads --------------------------------------------------------------------------------------

    def artifact(self, uri: str | None, request: Request, *, media_type: str | None = None,
                 filename: str | None = None) -> Response:
        if not uri:
            return _placeholder("no image recorded for this sample")
        etag = f'"{uri.split("?", 1)[0].rsplit("/", 1)[-1]}"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag, "Cache-Control": IMMUTABLE})
        try:
            path = self.cache.path_of(uri)
        except Exception as error:  # any store failure: the page shows why, never a 500
            return _placeholder(reason_of(error))
        return FileResponse(path, media_type=media_type or "image/png", filename=filename,
                            headers={"ETag": etag, "Cache-Control": IMMUTABLE})

    def sample_image(self, request: Request) -> Response:
        size = request.path_params["size"]
        if size not in ("24", "full"):
            return _placeholder(f"no image size {size!r}")
        try:
            uri = self.store.sample_image_uri(request.path_params["sample_id"], size)
        except OrchestratorError as error:
            return _placeholder(reason_of(error))
        return self.artifact(uri, request)

    def sheet_image(self, request: Request) -> Response:
        try:
            uri = self.store.sheet_uri(request.path_params["event_id"])
        except OrchestratorError as error:
            return _placeholder(reason_of(error))
        return self.artifact(uri, request)

    def snapshot_image(self, request: Request) -> Response:
        snapshot_id, sha256 = request.path_params["snapshot_id"], request.path_params["sha256"]
        try:
            path, archive_uri = self.store.snapshot_image_path(snapshot_id, sha256)
            folder = self.cache.snapshot_dir(snapshot_id, archive_uri)
        except Exception as error:  # any store or archive failure: a placeholder that says why
            return _placeholder(reason_of(error))
        etag = f'"{sha256}"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag, "Cache-Control": IMMUTABLE})
        # path comes from the database and was checked safe when the archive was extracted
        return FileResponse(folder / path, headers={"ETag": etag, "Cache-Control": IMMUTABLE})

    def checkpoint(self, request: Request) -> Response:
        try:
            record = self.store.checkpoint_uri(request.path_params["checkpoint_id"])
        except OrchestratorError as error:
            return self.failure(request, error)
        name = f"{record.run_id}-epoch{record.epoch if record.epoch is not None else 'final'}.safetensors"
        response = self.artifact(record.uri, request, media_type="application/octet-stream", filename=name)
        return response if response.media_type != "image/svg+xml" else self.failure(
            request, NotFoundError(f"checkpoint {record.id} cannot be fetched", _svg_reason(response)))

    # ---- pages -------------------------------------------------------------------------------------------------------

    def run_live(self, request: Request) -> Response:
        """The part of a Run page that changes while it trains (htmx polls it)."""
        try:
            data = queries.run_view(self.store, request.path_params["ref"])
        except OrchestratorError as error:
            return self.failure(request, error)
        return self.render(request, "run_live.html", data)

    # ---- verdicts (the only writes) -----------------------------------------------------------------------------

    def csrf_ok(self, request: Request, form: Any) -> bool:
        given = form.get("csrf_token") or request.headers.get(CSRF_HEADER) or ""
        return hmac.compare_digest(str(given).encode(), self.csrf.encode())

    async def verdict(self, request: Request) -> Response:
        """POST /run/REF/rate|mark|note|tag: one library call; bad input writes nothing and says why."""
        form = await request.form()
        if not self.csrf_ok(request, form):
            return Response("missing or wrong CSRF token: reload the page and try again\n", status_code=403,
                            media_type="text/plain")
        ref, kind = request.path_params["ref"], request.path_params["kind"]
        fields = {key: str(form.get(key) or "") for key in ("score", "epoch", "mark", "text", "tag", "action",
                                                            "author")}
        try:
            message = await run_in_threadpool(queries.record_verdict, self.store, ref, kind, fields)
            bad = False
        except NotFoundError as error:
            return self.failure(request, error)
        except OrchestratorError as error:
            message, bad = error.one_line(), True
        if not request.headers.get("hx-request") and not wants_json(request):
            if bad:
                return self.render(request, "error.html", {"error": message, "hint": None}, status=400)
            return RedirectResponse(f"/run/{ref}#verdicts", status_code=303)
        try:
            data = await run_in_threadpool(queries.verdicts_view, self.store, ref)
        except OrchestratorError as error:
            return self.failure(request, error)
        data.update(message=message, message_bad=bad)
        return self.render(request, "verdicts.html", data, status=400 if bad else 200)

    def routes(self) -> list[Any]:
        q = queries
        pages = [
            ("/", "runs.html", lambda r: q.runs_view(self.store, r.query_params)),
            ("/runs", "runs.html", lambda r: q.runs_view(self.store, r.query_params)),
            ("/run/{ref}", "run.html", lambda r: q.run_view(self.store, r.path_params["ref"])),
            ("/compare", "compare.html", lambda r: q.compare_view(self.store, q.parse_compare_refs(r.query_params))),
            ("/timeline", "timeline.html", lambda r: q.timeline_view(self.store)),
            ("/effectiveness", "effectiveness.html", lambda r: q.effectiveness_view(self.store)),
            ("/datasets", "datasets.html", lambda r: q.datasets_view(self.store)),
            ("/dataset/{ref}", "dataset.html", lambda r: q.dataset_view(
                self.store, self.cache, r.path_params["ref"], lint=r.query_params.get("lint") == "1",
                highlight=_words(r.query_params.get("highlight")))),
            ("/captions/{ref}", "captions.html", lambda r: q.caption_version_view(
                self.store, r.path_params["ref"], against=r.query_params.get("against") or None,
                highlight=_words(r.query_params.get("highlight")))),
        ]
        routes: list[Any] = []
        for path, template, build in pages:
            endpoint = self.page(template, build)
            if path != "/":
                routes.append(Route(path + ".json", endpoint))
            routes.append(Route(path, endpoint))
        routes += [
            Route("/run/{ref}/live", self.run_live),
            Route("/run/{ref}/{kind:str}", self.verdict, methods=["POST"]),
            Route("/image/sample/{sample_id:int}/{size}", self.sample_image),
            Route("/image/sheet/{event_id:int}", self.sheet_image),
            Route("/image/snapshot/{snapshot_id}/{sha256}", self.snapshot_image),
            Route("/checkpoint/{checkpoint_id:int}", self.checkpoint),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
        return routes


def _words(text: str | None) -> set[str]:
    return {w.strip() for w in (text or "").split(",") if w.strip()}


def wants_json(request: Request) -> bool:
    return request.url.path.endswith(".json") or request.query_params.get("format") == "json"


def json_url(request: Request) -> str:
    path = request.url.path
    base = "/runs" if path == "/" else path
    return f"{base}.json" + (f"?{request.url.query}" if request.url.query else "")


def _placeholder(reason: str) -> Response:
    # 200 so that the browser draws it in place of the image; never cached: the store may come back.
    return Response(placeholder_svg(reason), media_type="image/svg+xml",
                    headers={"Cache-Control": "no-store", "X-Placeholder-Reason": reason[:200].encode(
                        "ascii", "replace").decode()})


def _svg_reason(response: Response) -> str:
    return response.headers.get("x-placeholder-reason", "the store did not return it")


def create_app(database_url: str | None, *, cache_dir: Path, token: str | None = None) -> Starlette:
    review = ReviewApp(database_url, cache_dir=cache_dir, token=token)
    middleware = [Middleware(TokenGate, token=token)] if token else []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        review.store.close()

    app = Starlette(routes=review.routes(), middleware=middleware, lifespan=lifespan)
    app.state.review = review
    return app
