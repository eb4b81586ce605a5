"""The admin JSON API (``/admin/api``): the console's operations for scripts and tools.

Authentication: ``Authorization: Bearer <token>`` with a token from ``gateway admin
token NAME`` (anything else: ``401``). Errors are ``{"error": code, "message": text}``
with a 4xx status. The OpenAPI 3 description is at ``/admin/api/openapi.json``
(same authentication). An INS is only ever sent in a request body, never in a URL.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from gateway.mailstore import adoption
from gateway.operations import audit_trail as ops_audit
from gateway.operations import patients as ops_patients
from gateway.operations import people as ops_people
from gateway.operations import pros as ops_pros
from gateway.operations import queue as ops_queue
from gateway.operations import quota as ops_quota
from gateway.operations import trust as ops_trust
from gateway.operations.common import Actor, OpError, bad_request, flag, integer, not_found
from gateway.web import forms
from gateway.web.admin import api_identities
from gateway.web.admin.context import AdminContext
from gateway.web.admin.openapi import spec

MAX_JSON = 64 * 1024


async def body_json(request: Request) -> dict[str, Any]:
    raw = await _limited_body(request, MAX_JSON)
    try:
        data = json.loads(raw or b"null")
    except ValueError:
        raise bad_request("corps JSON invalide", "bad_json") from None
    if not isinstance(data, dict):
        raise bad_request("un objet JSON est attendu", "bad_json")
    return data


async def _limited_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise OpError(413, "too_large", f"corps plus grand que {limit} octets")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise OpError(413, "too_large", f"corps plus grand que {limit} octets")
        chunks.append(chunk)
    return b"".join(chunks)


def routes(ctx: AdminContext) -> list[BaseRoute]:
    def read(fn: Any, *args: Any, **kwargs: Any) -> Any:
        with ctx.svc.db.read() as session:
            return fn(session, *args, **kwargs)

    def write(fn: Any, *args: Any, **kwargs: Any) -> Any:
        with ctx.svc.db.write() as session:
            return fn(session, *args, **kwargs)

    async def run_read(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await ctx.run(read, fn, *args, **kwargs)

    async def run_write(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await ctx.run(write, fn, *args, **kwargs)

    def status_param(request: Request) -> str | None:
        value = request.query_params.get("status")
        return value or None

    async def openapi(request: Request, _: Actor) -> Response:
        return JSONResponse(spec(request.scope.get("root_path", "")))

    async def stats(request: Request, _: Actor) -> Response:
        def load(session: Any) -> dict[str, Any]:
            now = ctx.now()
            series = adoption.series(session, now)
            return {**adoption.figures(session, now).as_dict(),
                    "series": {k: [{"day": d, "value": v} for d, v in values] for k, values in series.items()}}

        return JSONResponse(await run_read(load))

    async def domains(request: Request, _: Actor) -> Response:
        return JSONResponse(await run_read(ops_trust.list_trusted, status=status_param(request)))

    async def domain_add(request: Request, actor: Actor) -> Response:
        data = await body_json(request)
        return JSONResponse(await run_write(ops_trust.add, actor, data, now=ctx.now()), status_code=201)

    async def domain_status(request: Request, actor: Actor) -> Response:
        status = {"suspend": "suspended", "resume": "active"}.get(request.path_params["action"])
        if status is None:
            raise not_found("action inconnue")
        return JSONResponse(await run_write(ops_trust.set_status, actor, request.path_params["name"], status,
                                            now=ctx.now()))

    async def domain_set(request: Request, actor: Actor) -> Response:
        data = await body_json(request)
        return JSONResponse(await run_write(ops_trust.update, actor, request.path_params["name"], data,
                                            now=ctx.now()))

    async def domain_import(request: Request, actor: Actor) -> Response:
        apply = flag(request.query_params.get("apply"), "apply")
        forms.allow_body(request, ops_trust.MAX_UPLOAD)
        data = await _limited_body(request, ops_trust.MAX_UPLOAD)
        return JSONResponse(await run_write(ops_trust.import_list, actor, data, source="api-upload.xml",
                                            now=ctx.now(), apply=apply))

    async def pros(request: Request, _: Actor) -> Response:
        return JSONResponse(await run_read(ops_people.list_pros, status=status_param(request)))

    async def pro_add(request: Request, actor: Actor) -> Response:
        data = await body_json(request)
        return JSONResponse(await run_write(ops_people.add_professional, ctx.svc.keys, actor, data, now=ctx.now()),
                            status_code=201)

    async def pro_status(request: Request, actor: Actor) -> Response:
        status = {"disable": "disabled", "enable": "active"}.get(request.path_params["action"])
        if status is None:
            raise not_found("action inconnue")
        return JSONResponse(await run_write(ops_pros.set_status, actor, request.path_params["address"],
                                            status, now=ctx.now()))

    async def pro_show(request: Request, _: Actor) -> Response:
        return JSONResponse(await run_read(ops_pros.show, ctx.svc.keys, request.path_params["address"]))

    async def pro_password(request: Request, actor: Actor) -> Response:
        data = await body_json(request)
        hashed = await ctx.run(ops_pros.hash_new_password, data.get("password"))
        return JSONResponse(await run_write(ops_pros.set_password, ctx.svc.keys, actor,
                                            request.path_params["address"], hashed, now=ctx.now()))

    async def patient_lookup(request: Request, actor: Actor) -> Response:
        data = await body_json(request)
        return JSONResponse(await run_write(ops_people.lookup, ctx.svc.keys, actor, data.get("ins"), ctx.svc.settings,
                                            now=ctx.now()))

    async def patient_provision(request: Request, actor: Actor) -> Response:
        data = await body_json(request)
        return JSONResponse(await run_write(ops_people.provision_patient, ctx.svc.keys, actor, data,
                                            ctx.svc.settings, now=ctx.now()), status_code=201)

    async def patient_close(request: Request, actor: Actor) -> Response:
        data = await body_json(request)
        return JSONResponse(await run_write(ops_patients.close, ctx.svc.keys, actor, data.get("ins"),
                                            retention_days=ctx.svc.settings.patients.archive_retention_days,
                                            now=ctx.now()))

    async def patient_deletion(request: Request, actor: Actor) -> Response:
        data = await body_json(request)
        return JSONResponse(await run_write(ops_patients.request_deletion, ctx.svc.keys, actor, data.get("ins"),
                                            retention_days=ctx.svc.settings.patients.archive_retention_days,
                                            now=ctx.now(), purge_now=flag(data.get("purge_now"), "purge_now")))

    async def quota_show(request: Request, _: Actor) -> Response:
        data = await body_json(request)  # a patient's INS: in the body, never in a URL
        return JSONResponse(await run_read(ops_quota.show, ctx.svc.keys, ctx.quota_defaults, data.get("mailbox")))

    async def quota_set(request: Request, actor: Actor) -> Response:
        data = await body_json(request)
        return JSONResponse(await run_write(ops_quota.set_limits, ctx.svc.keys, actor, ctx.quota_defaults,
                                            data.get("mailbox"),
                                            storage_kib=data.get("storage_kib"), messages=data.get("messages"),
                                            now=ctx.now()))

    async def queue(request: Request, _: Actor) -> Response:
        limit = integer(request.query_params.get("limit"), "limit", low=1, high=ops_queue.LIST_LIMIT, default=200)
        return JSONResponse(await run_read(ops_queue.list_entries, ctx.svc.keys, now=ctx.now(),
                                           status=status_param(request), limit=limit or 200))

    async def queue_show(request: Request, actor: Actor) -> Response:
        return JSONResponse(await run_write(ops_queue.show, ctx.svc.keys, actor, request.path_params["entry"],
                                            patient_domain=ctx.svc.settings.domains.patient_domain, now=ctx.now()))

    async def queue_action(request: Request, actor: Actor) -> Response:
        if request.path_params["action"] not in ops_queue.ACTIONS:
            raise not_found("action inconnue")
        return JSONResponse(await run_write(ops_queue.act, actor, request.path_params["entry"],
                                            request.path_params["action"], now=ctx.now()))

    async def audit_search(request: Request, _: Actor) -> Response:
        query = ops_audit.AuditQuery.parse(request.query_params)
        return JSONResponse(await run_read(ops_audit.search, ctx.svc.keys, query))

    async def audit_export(request: Request, actor: Actor) -> Response:
        fmt = request.query_params.get("format", "jsonl")
        if fmt not in ("csv", "jsonl"):
            raise bad_request("format : csv ou jsonl")
        query = ops_audit.AuditQuery.parse(request.query_params)
        await ctx.run(ops_audit.record_export, ctx.svc.db, actor, query, fmt)
        rows = ops_audit.export_rows(ctx.svc.db, ctx.svc.keys, query)
        body = ops_audit.csv_lines(rows) if fmt == "csv" else ops_audit.jsonl(rows)
        return StreamingResponse(body, media_type="text/csv; charset=utf-8" if fmt == "csv"
                                 else "application/x-ndjson")

    async def audit_verify(request: Request, actor: Actor) -> Response:
        return JSONResponse(await ctx.run(ops_audit.verify, ctx.svc.db, actor))

    api = ctx.api
    return [
        Route("/openapi.json", api(openapi), methods=["GET"]),
        Route("/stats", api(stats), methods=["GET"]),
        Route("/domains", api(domains), methods=["GET"]),
        Route("/domains", api(domain_add), methods=["POST"]),
        Route("/domains/import", api(domain_import), methods=["POST"]),
        Route("/domains/{name}", api(domain_set), methods=["PATCH"]),
        Route("/domains/{name}/{action}", api(domain_status), methods=["POST"]),
        Route("/pros", api(pros), methods=["GET"]),
        Route("/pros", api(pro_add), methods=["POST"]),
        Route("/pros/{address}", api(pro_show), methods=["GET"]),
        Route("/pros/{address}/password", api(pro_password), methods=["POST"]),
        *api_identities.routes(api, run_read, run_write, body_json, ctx.now),
        Route("/pros/{address}/{action}", api(pro_status), methods=["POST"]),
        Route("/patients", api(patient_provision), methods=["POST"]),
        Route("/patients/lookup", api(patient_lookup), methods=["POST"]),
        Route("/patients/close", api(patient_close), methods=["POST"]),
        Route("/patients/deletion", api(patient_deletion), methods=["POST"]),
        Route("/quota/lookup", api(quota_show), methods=["POST"]),
        Route("/quota", api(quota_set), methods=["POST"]),
        Route("/queue", api(queue), methods=["GET"]),
        Route("/queue/{entry}", api(queue_show), methods=["GET"]),
        Route("/queue/{entry}/{action}", api(queue_action), methods=["POST"]),
        Route("/audit", api(audit_search), methods=["GET"]),
        Route("/audit/export", api(audit_export), methods=["GET"]),
        Route("/audit/verify", api(audit_verify), methods=["POST"]),
    ]
