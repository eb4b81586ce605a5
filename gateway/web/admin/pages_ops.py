"""Console pages: patient lookup/provisioning, outbound queue, audit trail (search, export, verify).

The INS is always sent in a POST body (never in a URL, so it stays out of access logs
and browser history); lookups and exports are audited.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from gateway.operations import audit_trail as ops_audit
from gateway.operations import people as ops_people
from gateway.operations import queue as ops_queue
from gateway.operations.common import OpError, bad_request
from gateway.web.admin.context import AdminContext, Who

QUEUE_MESSAGES = {"retry": "Nouvel essai programmé.", "bounce": "Entrée rejetée : l'expéditeur sera prévenu.",
                  "cancel": "Entrée annulée."}


def routes(ctx: AdminContext) -> list[BaseRoute]:
    async def patients(request: Request, who: Who) -> Response:
        return ctx.render(request, "patients.html", who, patient=None, created=None, error=None)

    async def patient_lookup(request: Request, who: Who) -> Response:
        form = await request.form()

        def go() -> dict[str, Any]:
            with ctx.svc.db.write() as session:
                return ops_people.lookup(session, ctx.svc.keys, who.actor, form.get("ins"), ctx.svc.settings,
                                         now=ctx.now())

        try:
            found = await ctx.run(go)
        except OpError as exc:
            return ctx.render(request, "patients.html", who, status=exc.status, patient=None, created=None,
                              error=exc.message)
        return ctx.render(request, "patients.html", who, patient=found, created=None, error=None)

    async def patient_provision(request: Request, who: Who) -> Response:
        form = dict(await request.form())

        def go() -> dict[str, Any]:
            with ctx.svc.db.write() as session:
                return ops_people.provision_patient(session, ctx.svc.keys, who.actor, form, ctx.svc.settings,
                                                    now=ctx.now())

        try:
            created = await ctx.run(go)
        except OpError as exc:
            return ctx.render(request, "patients.html", who, status=exc.status, patient=None, created=None,
                              error=exc.message)
        return ctx.render(request, "patients.html", who, patient=None, created=created, error=None)

    async def queue(request: Request, who: Who) -> Response:
        status = request.query_params.get("status", "pending") or None

        def load() -> dict[str, Any]:
            with ctx.svc.db.read() as session:
                return ops_queue.list_entries(session, ctx.svc.keys, now=ctx.now(), status=status)

        data = await ctx.run(load)
        message = QUEUE_MESSAGES.get(request.query_params.get("msg", ""))
        return ctx.render(request, "queue.html", who, data=data, current=status or "", statuses=ops_queue.STATUSES,
                          message=message)

    async def queue_action(request: Request, who: Who) -> Response:
        action = request.path_params["action"]

        def go() -> None:
            with ctx.svc.db.write() as session:
                ops_queue.act(session, who.actor, request.path_params["entry"], action, now=ctx.now())

        await ctx.run(go)
        return RedirectResponse(f"{request.scope.get('root_path', '')}/queue?msg={action}", status_code=303)

    async def audit_page(request: Request, who: Who) -> Response:
        try:
            query = ops_audit.AuditQuery.parse(request.query_params)
        except OpError as exc:
            return ctx.render(request, "audit.html", who, status=exc.status, rows=[], query={}, error=exc.message,
                              verified=None, export="")

        def load() -> list[dict[str, Any]]:
            with ctx.svc.db.read() as session:
                return ops_audit.search(session, ctx.svc.keys, query)

        rows = await ctx.run(load)
        return ctx.render(request, "audit.html", who, rows=rows, query=dict(request.query_params), error=None,
                          verified=None, export=str(request.url.query))

    async def audit_export(request: Request, who: Who) -> Response:
        fmt = request.path_params["fmt"]
        if fmt not in ("csv", "jsonl"):
            raise bad_request("format : csv ou jsonl")
        query = ops_audit.AuditQuery.parse(request.query_params)
        await ctx.run(ops_audit.record_export, ctx.svc.db, who.actor, query, fmt)
        rows = ops_audit.export_rows(ctx.svc.db, ctx.svc.keys, query)
        body = ops_audit.csv_lines(rows) if fmt == "csv" else ops_audit.jsonl(rows)
        media = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"
        return StreamingResponse(body, media_type=media, headers={
            "content-disposition": f'attachment; filename="audit.{fmt}"'})

    async def audit_verify(request: Request, who: Who) -> Response:
        result = await ctx.run(ops_audit.verify, ctx.svc.db, who.actor)
        return ctx.render(request, "audit.html", who, rows=[], query={}, error=None, verified=result, export="")

    return [
        Route("/patients", ctx.console(patients), methods=["GET"]),
        Route("/patients/lookup", ctx.console(patient_lookup), methods=["POST"]),
        Route("/patients/provision", ctx.console(patient_provision), methods=["POST"]),
        Route("/queue", ctx.console(queue), methods=["GET"]),
        Route("/queue/{entry}/{action}", ctx.console(queue_action), methods=["POST"]),
        Route("/audit", ctx.console(audit_page), methods=["GET"]),
        Route("/audit/export.{fmt}", ctx.console(audit_export), methods=["GET"]),
        Route("/audit/verify", ctx.console(audit_verify), methods=["POST"]),
    ]

