"""The console's pages: server-rendered HTML (Jinja2), one form per action, no script.

Each page is a plain form-and-redirect page (an action answers 303 back to a page, with a message
kept in the session), so a browser's back button and reload do no harm and the console works
without JavaScript. Rule 3 of ``access`` is checked here: a login when one is configured, and the
session's CSRF token on every ``POST``.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any, Awaitable, Callable
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from connector.errors import LockBusy, Refused, SyncError

from jobs.logs import scrub
from jobs.read.lookup import pages as page_count
from jobs.worker.console.access import COOKIE, Access, Session
from jobs.worker.console.app import blocking
from jobs.worker.console.ops import JOB_CHOICES, ConsoleOps, NotFound, Stopping

log = logging.getLogger("wcsync.console")

# Conflicts a link to a contact resolves (the others are fixed in Webitel or Creatio, or ignored).
LINKABLE = frozenset({"ambiguous_match", "linked_contact_missing"})
MATRIX_PAGE = 50  # users per page of the matrix
FORM_LIMIT = 16 * 1024  # no form here sends more
KEY_USER = re.compile(r"^(?:webitel_user|contact|extension_comm|grant):(\d+)(?::|$)")
# How the plan names a candidate contact: ``contact 'Ann Lee' (<Id>)`` (the name as Python's repr).
CANDIDATE = re.compile(r"^contact (?P<q>['\"])(?P<name>.*)(?P=q) \((?P<id>[0-9A-Fa-f-]{36})\)$")

Handler = Callable[[Request, Session, FormData | None], Awaitable[Response]]


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("jobs.worker.console", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=_when,
        dotted=_dotted,
        user_of_key=user_of_key,
        quote=lambda v: quote(str(v), safe=""),
        candidate=candidate,
        changes=_changes,
        changes_made=changes_made,
        short=lambda v, n=8: str(v or "")[:n],
    )
    return env


def routes(ops: ConsoleOps, access: Access) -> list[Route]:
    templates = Jinja2Templates(env=environment())

    def render(request: Request, session: Session, name: str, status: int = 200, **context: Any) -> Response:
        flashes, session.flashes = session.flashes, []
        return templates.TemplateResponse(
            request,
            name,
            {
                "csrf": session.csrf,
                "flashes": flashes,
                "login_required": access.login_required,
                "path": request.url.path,
                **context,
            },
            status_code=status,
        )

    def page(handler: Handler, *, post: bool = False) -> Callable[[Request], Awaitable[Response]]:
        """The handler behind rule 3: signed in (else to the login page), CSRF checked on POST."""

        async def call(request: Request) -> Response:
            session = access.session(request)
            assert session is not None
            if not access.signed_in(session):
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                answer: Response = RedirectResponse("/login?" + urlencode({"next": target}), 303)
            elif post:
                form = await _form(request)
                if form is None or not access.csrf_ok(session, form.get("csrf")):
                    answer = Response(
                        "the form has expired: go back, reload the page and try again\n",
                        403,
                        media_type="text/plain",
                    )
                else:
                    answer = await handler(request, session, form)
            else:
                answer = await handler(request, session, None)
            _keep(request, answer, session)
            return answer

        return call

    def back(session: Session, to: str, level: str = "", text: str = "") -> Response:
        if text:
            session.flashes.append((level, scrub(text)))
        return RedirectResponse(to, 303)

    async def act(
        session: Session, to: str, action: Callable[[], Any], done: Callable[[Any], str]
    ) -> Response:
        """Do a blocking action and go back to ``to``, saying what it did or why it was refused."""
        try:
            result = await blocking(action)
        except Refused as exc:
            return back(session, to, "error", f"refused: {exc}")
        except NotFound as exc:
            return back(session, to, "error", str(exc))
        except LockBusy:
            return back(session, to, "error", "a run is in progress; try again when it ends")
        except Stopping as exc:
            return back(session, to, "error", str(exc))
        except SyncError as exc:
            text = str(exc)
            return back(session, to, "error", text if text.startswith("failed") else f"failed: {text}")
        return back(session, to, "ok", done(result))

    # --- login ---------------------------------------------------------------------------

    async def login_page(request: Request) -> Response:
        session = access.session(request)
        assert session is not None
        if access.signed_in(session):
            answer: Response = RedirectResponse(_local(request.query_params.get("next")), 303)
        else:
            answer = render(request, session, "login.html", next=_local(request.query_params.get("next")))
        _keep(request, answer, session)
        return answer

    async def login(request: Request) -> Response:
        session = access.session(request)
        assert session is not None
        form = await _form(request)
        client = request.client.host if request.client else "?"
        target = _local(form.get("next") if form else None)
        if form is None or not access.csrf_ok(session, form.get("csrf")):
            session.flashes.append(("error", "the form has expired; try again"))
            answer: Response = RedirectResponse("/login?" + urlencode({"next": target}), 303)
        elif access.throttled(client):
            log.warning("console: too many failed logins from %s", client)
            session.flashes.append(("error", "too many failed attempts; wait a quarter of an hour"))
            answer = RedirectResponse("/login?" + urlencode({"next": target}), 303)
        else:
            fresh = await blocking(access.login, session, str(form.get("secret") or ""), client)
            if fresh is None:
                log.warning("console: a failed login from %s", client)
                session.flashes.append(("error", "that is neither the console token nor its password"))
                answer = RedirectResponse("/login?" + urlencode({"next": target}), 303)
            else:
                log.info("console: signed in from %s", client)
                session = fresh
                answer = RedirectResponse(target, 303)
        _keep(request, answer, session)
        return answer

    async def logout(request: Request, session: Session, form: FormData | None) -> Response:
        access.logout(session)
        answer = RedirectResponse("/login" if access.login_required else "/", 303)
        answer.delete_cookie(COOKIE, path="/")
        return answer

    # --- overview and runs -----------------------------------------------------------------

    async def overview(request: Request, session: Session, form: FormData | None) -> Response:
        data = await blocking(ops.overview)
        return render(
            request, session, "overview.html", section="overview", data=data, charts=_charts(data["trend"])
        )

    async def runs_page(request: Request, session: Session, form: FormData | None) -> Response:
        runs = await blocking(ops.runs, 50)
        holder = await blocking(ops.lock_holder)
        return render(
            request,
            session,
            "runs.html",
            section="runs",
            runs=runs,
            running=holder,
            launches={i: l for l in ops.launches() for i in {l.run_id, *l.run_ids}},
        )

    async def start_run(request: Request, session: Session, form: FormData | None) -> Response:
        assert form is not None
        job = str(form.get("job") or "all")
        user = str(form.get("user") or "").strip() or None
        back_to = _local(form.get("back"), "/runs")
        if job not in JOB_CHOICES:
            return back(session, back_to, "error", f"unknown job {job!r}")
        try:
            launch = await blocking(
                ops.start_run,
                jobs=JOB_CHOICES[job],
                user=user,
                by=f"console ({_client(request)})",
                dry_run=form.get("dry_run") == "on",
            )
        except LockBusy:
            return back(session, back_to, "error", "a run is in progress; try again when it ends")
        except (Refused, Stopping) as exc:
            return back(session, back_to, "error", f"refused: {exc}")
        except SyncError as exc:
            return back(session, back_to, "error", f"failed: {exc}")
        return back(session, f"/runs/{launch.run_id}", "ok", "the sync has started")

    async def run_page(request: Request, session: Session, form: FormData | None) -> Response:
        run_id = request.path_params["run_id"]
        try:
            record, launch = await blocking(ops.run, run_id)
        except LookupError as exc:
            return render(request, session, "message.html", 400, section="runs", title="Run", text=str(exc))
        if record is None and launch is None:
            return render(
                request,
                session,
                "message.html",
                404,
                section="runs",
                title="Run",
                text=f"no run {run_id!r} in the history",
            )
        events = await blocking(ops.run_events, record.run_id) if record is not None else []
        later = []
        for other in launch.run_ids[1:] if launch and record and launch.run_id == record.run_id else []:
            found = await blocking(ops.store.get_run, other)
            if found is not None:
                later.append(found)
        going = (record is None and launch is not None and not launch.done.is_set()) or (
            record is not None and record.outcome == "running"
        )
        return render(
            request,
            session,
            "run.html",
            section="runs",
            run=record,
            launch=launch,
            events=events,
            later=later,
            going=going,
            report=(record.report or {}) if record else {},
            refresh=2 if going else None,
        )

    # --- conflicts -------------------------------------------------------------------------

    async def conflicts_page(request: Request, session: Session, form: FormData | None) -> Response:
        conflicts = await blocking(ops.conflicts)
        ignored = await blocking(ops.ignored)
        holder = await blocking(ops.lock_holder)
        return render(
            request,
            session,
            "conflicts.html",
            section="conflicts",
            conflicts=conflicts,
            ignored=ignored,
            running=holder,
            linkable=LINKABLE,
        )

    async def link(request: Request, session: Session, form: FormData | None) -> Response:
        assert form is not None
        conflict_id, contact = request.path_params["conflict_id"], str(form.get("contact") or "")
        return await act(
            session,
            "/conflicts",
            lambda: ops.link(conflict_id, contact, who=f"console ({_client(request)})"),
            lambda done: (
                f"{done.get('user') or 'the user'} linked to contact {done.get('contact') or ''} "
                f"({done.get('contact_id') or contact.strip()}); the next sync writes the link"
            ),
        )

    async def ignore(request: Request, session: Session, form: FormData | None) -> Response:
        assert form is not None
        conflict_id, reason = request.path_params["conflict_id"], str(form.get("reason") or "")
        return await act(
            session,
            "/conflicts",
            lambda: ops.ignore(conflict_id, reason, who=f"console ({_client(request)})"),
            lambda done: "ignored; from the next sync on it is listed under Ignored",
        )

    async def unignore(request: Request, session: Session, form: FormData | None) -> Response:
        conflict_id = request.path_params["conflict_id"]
        return await act(
            session,
            "/conflicts",
            lambda: ops.unignore(conflict_id, who=f"console ({_client(request)})"),
            lambda done: "no longer ignored: the next sync reports it again",
        )

    # --- licences --------------------------------------------------------------------------

    def unreadable(request: Request, session: Session, exc: SyncError) -> Response:
        """The licence pages' answer when Webitel cannot be read."""
        return render(request, session, "message.html", 502, section="licenses", title="Licences",
                      text=f"Webitel cannot be read: {scrub(str(exc))}")

    async def registry(request: Request, session: Session, form: FormData | None) -> Response:
        search, product = _query(request, "search"), _query(request, "product")
        try:
            rows = await blocking(ops.registry, search=search, product=product)
            products = await blocking(ops.products)
        except SyncError as exc:
            return unreadable(request, session, exc)
        return render(
            request,
            session,
            "licenses.html",
            section="licenses",
            rows=rows,
            products=products,
            search=search,
            product=product,
            expiring_days=ops.config.licenses.expiring_days,
        )

    async def matrix(request: Request, session: Session, form: FormData | None) -> Response:
        search, product = _query(request, "search"), _query(request, "product")
        try:
            columns, rows = await blocking(ops.matrix, search=search, product=product)
            products = await blocking(ops.products)
        except SyncError as exc:
            return unreadable(request, session, exc)
        pages = page_count(len(rows), MATRIX_PAGE)
        number = min(max(_int(request.query_params.get("page"), 1), 1), pages)
        shown = rows[(number - 1) * MATRIX_PAGE : number * MATRIX_PAGE]
        here = "/licenses/users?" + urlencode(
            {k: v for k, v in (("search", search), ("product", product), ("page", number)) if v}
        )
        return render(
            request,
            session,
            "matrix.html",
            section="licenses",
            columns=columns,
            rows=shown,
            total=len(rows),
            products=products,
            search=search,
            product=product,
            page=number,
            pages=pages,
            here=here,
            pager=lambda n: (
                "/licenses/users?"
                + urlencode({k: v for k, v in (("search", search), ("product", product), ("page", n)) if v})
            ),
        )

    async def grant(request: Request, session: Session, form: FormData | None) -> Response:
        assert form is not None
        action, user, serial = (str(form.get(k) or "") for k in ("action", "user", "serial"))
        back_to = _local(form.get("back"), "/licenses/users")
        return await act(
            session,
            back_to,
            lambda: ops.change_grant(action, user, serial, who=f"console ({_client(request)})"),
            lambda text: text or "done",
        )

    # --- users ------------------------------------------------------------------------------

    async def find_user(request: Request, session: Session, form: FormData | None) -> Response:
        wanted = _query(request, "q")
        if not wanted:
            return RedirectResponse("/conflicts", 303)
        return RedirectResponse(f"/users/{quote(wanted, safe='')}", 303)

    async def user_page(request: Request, session: Session, form: FormData | None) -> Response:
        user = request.path_params["user"]
        label, story = await blocking(ops.user_story, user)
        try:
            current, unreachable = await blocking(ops.webitel_user, user), ""
        except SyncError as exc:
            current, unreachable = None, scrub(str(exc))
        conflicts = [c for c in await blocking(ops.conflicts) if _about(c, user, current)]
        licenses = []
        if current is not None and current.licenses:
            licenses = sorted(current.licenses, key=lambda g: (g.product, g.serial))
        return render(
            request,
            session,
            "user.html",
            section="users",
            user=user,
            label=label,
            story=story,
            current=current,
            unreachable=unreachable,
            conflicts=conflicts,
            licenses=licenses,
        )

    async def sync_user(request: Request, session: Session, form: FormData | None) -> Response:
        user = request.path_params["user"]
        back_to = f"/users/{quote(user, safe='')}"
        try:
            launch = await blocking(
                ops.start_run, jobs=JOB_CHOICES["all"], user=user, by=f"console ({_client(request)})"
            )
        except LockBusy:
            return back(session, back_to, "error", "a run is in progress; try again when it ends")
        except (Refused, Stopping) as exc:
            return back(session, back_to, "error", f"refused: {exc}")
        except SyncError as exc:
            return back(session, back_to, "error", f"failed: {exc}")
        return back(session, f"/runs/{launch.run_id}", "ok", f"syncing {user} now")

    return [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", page(logout, post=True), methods=["POST"]),
        Route("/", page(overview), methods=["GET"]),
        Route("/runs", page(runs_page), methods=["GET"]),
        Route("/runs", page(start_run, post=True), methods=["POST"]),
        Route("/runs/{run_id}", page(run_page), methods=["GET"]),
        Route("/conflicts", page(conflicts_page), methods=["GET"]),
        Route("/conflicts/{conflict_id}/link", page(link, post=True), methods=["POST"]),
        Route("/conflicts/{conflict_id}/ignore", page(ignore, post=True), methods=["POST"]),
        Route("/conflicts/{conflict_id}/unignore", page(unignore, post=True), methods=["POST"]),
        Route("/licenses", page(registry), methods=["GET"]),
        Route("/licenses/users", page(matrix), methods=["GET"]),
        Route("/licenses/users", page(grant, post=True), methods=["POST"]),
        Route("/users", page(find_user), methods=["GET"]),
        Route("/users/{user}", page(user_page), methods=["GET"]),
        Route("/users/{user}/sync", page(sync_user, post=True), methods=["POST"]),
    ]


def _keep(request: Request, response: Response, session: Session) -> None:
    """Send the session's cookie when the browser does not have it yet (a new or renewed session)."""
    if request.cookies.get(COOKIE) != session.sid:
        response.set_cookie(
            COOKIE,
            session.sid,
            httponly=True,
            samesite="strict",
            path="/",
            secure=request.url.scheme == "https",
        )


async def _form(request: Request) -> FormData | None:
    """The posted form, or None when it is too large or not a form."""
    if int(request.headers.get("content-length") or 0) > FORM_LIMIT:
        return None
    try:
        return await request.form(max_files=0, max_fields=50)
    except Exception:  # a malformed body: treated as no form (the CSRF check fails on it)
        return None


def _local(target: Any, default: str = "/") -> str:
    """A redirect target of this site only (``/runs``), never another's (``//evil``, ``http://...``)."""
    text = str(target or "")
    if not text.startswith("/") or text.startswith("//") or "\\" in text or any(c < " " for c in text):
        return default
    return text


def _query(request: Request, name: str) -> str:
    return (request.query_params.get(name) or "").strip()[:200]


def _int(text: str | None, default: int) -> int:
    try:
        return int(text or default)
    except ValueError:
        return default


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def _about(conflict: dict, user: str, current) -> bool:
    ids = {user}
    if current is not None:
        ids |= {str(current.id), current.username}
    return str(conflict.get("webitel_id")) in ids or conflict.get("user") in ids


def user_of_key(key: str) -> str | None:
    """The Webitel id in an event key (``webitel_user:17``, ``grant:17:serial``), for a link."""
    found = KEY_USER.match(key or "")
    return found.group(1) if found else None


def candidate(text: str) -> dict[str, str] | None:
    """A candidate contact of an ``ambiguous_match`` (``contact 'Ann' (<Id>)``) as name and Id."""
    found = CANDIDATE.match(str(text))
    return {"name": found["name"].strip(), "id": found["id"]} if found else None


def _when(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    return f"{value:%Y-%m-%d %H:%M}" + (
        " UTC" if value.utcoffset() is not None and not value.utcoffset() else ""
    )


def _dotted(iso: str | None) -> str:
    """``2026-01-01`` as the Webitel admin writes it: ``01.01.2026``."""
    if not iso:
        return ""
    year, month, day = str(iso)[:10].split("-")
    return f"{day}.{month}.{year}"


def changes_made(run) -> int:
    """Changes a run made (planned, for a dry run), as ``history`` counts them."""
    meta = ("conflicts", "warnings", "errors", "applied", "failed", "planned")
    if "applied" in run.counts:
        return run.counts["applied"]
    return sum(n for kind, n in run.counts.items() if kind not in meta)


def _changes(event) -> str:
    old, new = event.old or {}, event.new or {}
    if not old and not new:
        return ""
    if not old:
        return ", ".join(f"{k}={v!r}" for k, v in new.items())
    return ", ".join(f"{k} {old.get(k)!r} → {v!r}" for k, v in new.items())


def _charts(trend: dict[str, list[dict]], slots: int = 20) -> dict[str, dict]:
    """Bars for the overview's trend of conflicts: one SVG per job, drawn here (no script).

    A chart has room for ``slots`` runs whatever the number so far, so that bars keep their width
    and a chart of two runs does not look like a chart of twenty.
    """
    charts = {}
    width, gap, height, label = 22, 8, 80, 16
    for job, runs in trend.items():
        top = max([r["conflicts"] for r in runs] + [1])
        bars = []
        for i, run in enumerate(runs[-slots:]):
            h = max(round(run["conflicts"] / top * height), 2)
            bars.append(
                {
                    "x": i * (width + gap),
                    "y": label + height - h,
                    "h": h,
                    "w": width,
                    "mid": i * (width + gap) + width / 2,
                    "label_y": label + height - h - 4,
                    **run,
                }
            )
        charts[job] = {"bars": bars, "top": top, "width": slots * (width + gap), "height": height + label}
    return charts
