"""The workbench's web app: routes, the one-time token, and what keeps identifiable data on this machine.

- bound to 127.0.0.1 only (``serve``); a request from any other address, or naming another host (DNS
  rebinding), gets 403 and nothing else;
- opened with a token printed on start: the first request carrying it gets a session cookie (HttpOnly,
  SameSite=Strict) and the token is spent; every request without that session answers 401, static files
  included;
- every response says ``Cache-Control: no-store`` and a Content-Security-Policy that allows nothing but
  this server's own script and styles (no CDN, no external request; works offline);
- forms carry a per-session CSRF value; pairs are addressed by opaque tokens, never record ids, and the
  server writes no access log, nor a traceback when a request fails (its text could quote a record).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from cilink.errors import UsageError
from cilink.link.review_ledger import DECISIONS, UNSURE
from cilink.link.workbench import Workbench

LOCAL_CLIENTS = frozenset({"127.0.0.1", "::1"})
SESSION_COOKIE = "cilink_review"
HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
STATIC = Path(__file__).parent / "static"


class Gate:
    """ASGI middleware: local clients only, the right Host, a session (or the one-time token), safe headers."""

    def __init__(self, app: ASGIApp, token: str, hosts: frozenset[str], clients: frozenset[str]) -> None:
        self.app = app
        self.token: str | None = token
        self.hosts = hosts
        self.clients = clients
        self.session = secrets.token_urlsafe(32)
        #: the kinds of error the app met (names only: never a message, which could hold data)
        self.errors: list[str] = []

    def csrf(self) -> str:
        return hmac.new(self.session.encode(), b"csrf", hashlib.sha256).hexdigest()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope)
        client = scope.get("client") or ("", 0)
        if client[0] not in self.clients or request.headers.get("host", "") not in self.hosts:
            await _secured(PlainTextResponse("Forbidden", status_code=403))(scope, receive, send)
            return
        given = request.query_params.get("token")
        if given is not None and self.token is not None and hmac.compare_digest(given, self.token):
            self.token = None  # spent: the printed URL opens the workbench once
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(SESSION_COOKIE, self.session, httponly=True, samesite="strict", path="/")
            await _secured(response)(scope, receive, send)
            return
        cookie = request.cookies.get(SESSION_COOKIE, "")
        if not hmac.compare_digest(cookie, self.session):
            await _secured(PlainTextResponse("Unauthorized: open the URL `cilink review serve` printed",
                                             status_code=401))(scope, receive, send)
            return

        async def send_secured(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.decode().lower() not in {h.lower() for h in HEADERS}]
                headers += [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_secured)
        except Exception as e:  # Starlette has answered 500; its traceback could quote a record id, so no log
            self.errors.append(type(e).__name__)


def _secured(response: Response) -> Response:
    response.headers.update(HEADERS)
    return response


def make_app(bench: Workbench, token: str, *, port: int, clients: frozenset[str] = LOCAL_CLIENTS) -> Gate:
    """The workbench app behind its gate (``token``: the one-time token; ``port``: for the Host check)."""
    env = Environment(loader=PackageLoader("cilink.web"), autoescape=select_autoescape(default=True))
    holder: dict[str, Gate] = {}

    def page(name: str, **context: Any) -> HTMLResponse:
        context.update(reviewer=bench.reviewer, second=bench.second, csrf=holder["gate"].csrf())
        return HTMLResponse(env.get_template(name).render(**context))

    async def checked_form(request: Request) -> dict[str, str] | None:
        # the forms are url-encoded and tiny: parsed here rather than with python-multipart
        body = (await request.body())[:4096].decode("utf-8", "replace")
        form = {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}
        if not hmac.compare_digest(form.get("csrf", ""), holder["gate"].csrf()):
            return None
        return form

    def next_after(token: str | None) -> str:
        queue = bench.queue()
        todo = [i.token for i in queue if i.my_decision is None and i.token != token]
        return f"/pair/{todo[0]}" if todo else "/queue"

    async def home(request: Request) -> Response:
        return RedirectResponse(next_after(None), status_code=303)

    async def queue(request: Request) -> Response:
        return page("queue.html", items=bench.queue())

    async def pair(request: Request) -> Response:
        view = bench.view(request.path_params["token"])
        if view is None:
            return PlainTextResponse("No such pair in the queue", status_code=404)
        items = bench.queue()
        tokens = [i.token for i in items]
        position = tokens.index(view.token) + 1 if view.token in tokens else None
        adjudicate = request.query_params.get("adjudicate") == "1"
        return page("pair.html", v=view, position=position, total=len(items), skip=next_after(view.token),
                    adjudicate=adjudicate, bar=_waterfall(view))

    async def decide(request: Request) -> Response:
        form = await checked_form(request)
        if form is None:
            return PlainTextResponse("Forbidden: stale form", status_code=403)
        decision = form.get("decision", "")
        if decision not in (*DECISIONS, UNSURE):
            return PlainTextResponse("Unknown decision", status_code=400)
        token = request.path_params["token"]
        adjudicate = form.get("adjudicate") == "1" and decision in DECISIONS
        if not bench.decide(token, decision, adjudicate=adjudicate):
            return PlainTextResponse("No such pair in the queue", status_code=404)
        return RedirectResponse("/disagreements" if adjudicate else next_after(token), status_code=303)

    async def undo(request: Request) -> Response:
        if await checked_form(request) is None:
            return PlainTextResponse("Forbidden: stale form", status_code=403)
        token = bench.undo()
        return RedirectResponse(f"/pair/{token}" if token else "/queue", status_code=303)

    async def disagreements(request: Request) -> Response:
        return page("disagreements.html", items=bench.disagreements())

    async def decided(request: Request) -> Response:
        return page("decided.html", items=bench.decided())

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)

    app = Starlette(routes=[
        Route("/favicon.ico", no_icon), Route("/", home), Route("/queue", queue), Route("/pair/{token}", pair),
        Route("/pair/{token}/decide", decide, methods=["POST"]), Route("/undo", undo, methods=["POST"]),
        Route("/disagreements", disagreements), Route("/decided", decided),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ])
    hosts = frozenset({f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"})
    gate = Gate(app, token, hosts, clients)
    holder["gate"] = gate
    return gate


def _waterfall(view: Any, width: int = 560, row: int = 22) -> dict[str, Any]:
    """Geometry of the waterfall chart: one bar per comparison from the running total before to after."""
    points = [view.prior_weight] + [c.cumulative for c in view.comparisons]
    lo, hi = min([*points, 0.0]), max([*points, 0.0])
    span = (hi - lo) or 1.0

    def x(v: float) -> float:
        return round(150 + (width - 170) * (v - lo) / span, 1)

    bars = [{"label": "prior", "x": min(x(0.0), x(points[0])),
             "w": max(abs(x(points[0]) - x(0.0)), 1.0), "y": 0, "up": points[0] >= 0, "value": points[0]}]
    for i, c in enumerate(view.comparisons):
        a, b = points[i], points[i + 1]
        bars.append({"label": c.comparison, "x": min(x(a), x(b)), "w": max(abs(x(b) - x(a)), 1.0),
                     "y": (i + 1) * row, "up": b >= a, "value": c.weight or 0.0})
    return {"bars": bars, "zero": x(0.0), "height": (len(bars) + 1) * row, "width": width,
            "total_y": len(bars) * row, "total": points[-1]}


def free_socket(port: int = 0) -> socket.socket:
    """A listening socket on 127.0.0.1 (``port`` 0: any free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as e:
        sock.close()
        raise UsageError(f"cannot listen on 127.0.0.1:{port} ({e.strerror})",
                         hint="choose another --port, or leave it out for any free one") from e
    sock.listen(16)
    return sock


def serve(bench: Workbench, *, port: int = 0, ready: Callable[[str], None] | None = None) -> None:
    """Serve the workbench on 127.0.0.1 until interrupted; ``ready`` gets the URL with the one-time token."""
    import uvicorn

    sock = free_socket(port)
    actual = sock.getsockname()[1]
    token = secrets.token_urlsafe(24)
    app = make_app(bench, token, port=actual)
    # no access log: the server never writes what was asked for (tokens are opaque, but logs are not needed)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", server_header=False)
    if ready:
        ready(f"http://127.0.0.1:{actual}/?token={token}")
    uvicorn.Server(config).run(sockets=[sock])
