"""Console pages: dashboard, trusted domains (with the liste blanche import), professionals.

Every change is a POST with the CSRF token, then a redirect (303) to the list with a
fixed message key; refusals render the page again with the reason.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from markupsafe import Markup
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.mailstore import adoption
from gateway.operations import people as ops_people
from gateway.operations import pros as ops_pros
from gateway.operations import trust as ops_trust
from gateway.operations.common import bad_request
from gateway.web.admin.chart import line_chart
from gateway.web.admin.context import AdminContext, Who

MESSAGES = {
    "domain-added": "Domaine ajouté à la liste de confiance.",
    "domain-suspended": "Domaine suspendu : son courrier est refusé.",
    "domain-active": "Domaine réactivé.",
    "import-applied": "Liste blanche importée.",
    "import-empty": "Aucun changement à appliquer.",
    "pro-added": "Compte professionnel créé.",
    "pro-disabled": "Compte professionnel désactivé ; ses sessions IMAP et SMTP ouvertes sont fermées.",
    "pro-active": "Compte professionnel réactivé.",
    "pro-password": "Mot de passe du compte professionnel défini.",
}
IMPORT_TTL = 1800.0
IMPORT_MAX_PENDING = 8  # previews held in memory (each file up to the import size limit)
SERIES_NAMES = {"created": "espaces créés", "activated": "activations", "opposed": "oppositions",
                "messages": "messages", "documents": "documents"}


def flash(request: Request) -> str | None:
    return MESSAGES.get(request.query_params.get("msg", ""))


def back(request: Request, page: str, msg: str) -> Response:
    return RedirectResponse(f"{request.scope.get('root_path', '')}/{page}?msg={msg}", status_code=303)


def routes(ctx: AdminContext) -> list[BaseRoute]:
    pending: dict[str, tuple[float, str, bytes, str]] = {}  # id -> (time, admin, file, name)

    async def dashboard(request: Request, who: Who) -> Response:
        def load() -> tuple[adoption.Figures, dict[str, list[tuple[str, int]]]]:
            with ctx.svc.db.read() as session:
                now = ctx.now()
                return adoption.figures(session, now), adoption.series(session, now)

        figures, series = await ctx.run(load)
        labels = [d for d, _ in series["created"]]
        spaces = line_chart("Espaces patients par jour", labels,
                            [(SERIES_NAMES[k], [v for _, v in series[k]]) for k in ("created", "activated", "opposed")])
        traffic = line_chart("Messages et documents par jour", labels,
                             [(SERIES_NAMES[k], [v for _, v in series[k]]) for k in ("messages", "documents")])
        table = [(d, *(series[k][i][1] for k in SERIES_NAMES)) for i, d in enumerate(labels)]
        return ctx.render(request, "dashboard.html", who, f=figures, charts=[Markup(spaces), Markup(traffic)],  # noqa: S704 - escaped by chart.py
                          table=table, columns=list(SERIES_NAMES.values()))

    async def domains(request: Request, who: Who) -> Response:
        rows = await ctx.run(_read, ops_trust.list_trusted)
        return ctx.render(request, "domains.html", who, rows=rows, message=flash(request))

    def _read(fn: Any, *args: Any) -> Any:
        with ctx.svc.db.read() as session:
            return fn(session, *args)

    async def domain_add(request: Request, who: Who) -> Response:
        form = dict(await request.form())

        def go() -> None:
            with ctx.svc.db.write() as session:
                ops_trust.add(session, who.actor, form, now=ctx.now())

        await ctx.run(go)
        return back(request, "domains", "domain-added")

    async def domain_status(request: Request, who: Who) -> Response:
        form = await request.form()
        status = str(form.get("status", ""))

        def go() -> None:
            with ctx.svc.db.write() as session:
                ops_trust.set_status(session, who.actor, request.path_params["name"], status, now=ctx.now())

        await ctx.run(go)
        return back(request, "domains", f"domain-{status}")

    async def import_form(request: Request, who: Who) -> Response:
        return ctx.render(request, "domain_import.html", who, preview=None, import_id=None, error=None)

    async def import_preview(request: Request, who: Who) -> Response:
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise bad_request("choisissez un fichier XML")
        data = await upload.read(ops_trust.MAX_UPLOAD + 1)
        name = (upload.filename or "liste-blanche.xml")[:120]

        def plan() -> dict[str, Any]:
            with ctx.svc.db.read() as session:
                parsed, found = ops_trust.preview(session, data)
                return ops_trust.plan_dict(parsed, found)

        result = await ctx.run(plan)
        now = time.monotonic()
        for key in [k for k, v in pending.items() if now - v[0] > IMPORT_TTL]:
            del pending[key]
        while len(pending) >= IMPORT_MAX_PENDING:  # oldest first: dicts keep insertion order
            del pending[next(iter(pending))]
        import_id = secrets.token_urlsafe(16)
        pending[import_id] = (now, who.actor.name, data, name)
        return ctx.render(request, "domain_import.html", who, preview=result, import_id=import_id, error=None)

    async def import_apply(request: Request, who: Who) -> Response:
        form = await request.form()
        held = pending.pop(str(form.get("import_id", "")), None)
        if held is None or held[1] != who.actor.name:
            raise bad_request("aperçu expiré : déposez le fichier à nouveau")
        _, _, data, name = held

        def go() -> dict[str, Any]:
            with ctx.svc.db.write() as session:
                return ops_trust.import_list(session, who.actor, data, source=name, now=ctx.now(), apply=True)

        result = await ctx.run(go)
        return back(request, "domains", "import-applied" if result["applied"] else "import-empty")

    async def pros(request: Request, who: Who) -> Response:
        rows = await ctx.run(_read, ops_people.list_pros)
        return ctx.render(request, "pros.html", who, rows=rows, message=flash(request))

    async def pro_add(request: Request, who: Who) -> Response:
        form = dict(await request.form())

        def go() -> None:
            with ctx.svc.db.write() as session:
                ops_people.add_professional(session, ctx.svc.keys, who.actor, form, now=ctx.now())

        await ctx.run(go)
        return back(request, "pros", "pro-added")

    async def pro_status(request: Request, who: Who) -> Response:
        form = await request.form()
        status = str(form.get("status", ""))

        def go() -> None:
            with ctx.svc.db.write() as session:
                ops_pros.set_status(session, who.actor, request.path_params["address"], status, now=ctx.now())

        await ctx.run(go)
        return back(request, "pros", f"pro-{status}")

    async def pro_password(request: Request, who: Who) -> Response:
        form = await request.form()
        password, again = form.get("password"), form.get("password_again")
        if password != again:
            raise bad_request("les deux mots de passe diffèrent")
        hashed = await ctx.run(ops_pros.hash_new_password, password)

        def go() -> None:
            with ctx.svc.db.write() as session:
                ops_pros.set_password(session, ctx.svc.keys, who.actor, request.path_params["address"], hashed,
                                      now=ctx.now())

        await ctx.run(go)
        return back(request, "pros", "pro-password")

    return [
        Route("/", ctx.console(dashboard), methods=["GET"]),
        Route("/domains", ctx.console(domains), methods=["GET"]),
        Route("/domains", ctx.console(domain_add), methods=["POST"]),
        Route("/domains/import", ctx.console(import_form), methods=["GET"]),
        Route("/domains/import", ctx.console(import_preview, max_body=ops_trust.MAX_UPLOAD + 65_536),
              methods=["POST"]),
        Route("/domains/import/apply", ctx.console(import_apply), methods=["POST"]),
        Route("/domains/{name}/status", ctx.console(domain_status), methods=["POST"]),
        Route("/pros", ctx.console(pros), methods=["GET"]),
        Route("/pros", ctx.console(pro_add), methods=["POST"]),
        Route("/pros/{address}/status", ctx.console(pro_status), methods=["POST"]),
        Route("/pros/{address}/password", ctx.console(pro_password), methods=["POST"]),
    ]
