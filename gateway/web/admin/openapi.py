"""OpenAPI 3.0 description of the admin JSON API (served at ``/admin/api/openapi.json``)."""

from __future__ import annotations

from typing import Any

STR = {"type": "string"}
NSTR = {"type": "string", "nullable": True}
INT = {"type": "integer"}
TYPES = ("personal", "organisational", "application")
BOOL = {"type": "boolean"}
OBJ = {"type": "object", "additionalProperties": True}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _ok(schema: dict[str, Any], status: str = "200", text: str = "OK") -> dict[str, Any]:
    return {status: {"description": text, **_json(schema)}, "400": _error("invalid input"),
            "401": _error("missing or invalid admin token"), "404": _error("not found"),
            "409": _error("conflict with the current state")}


def _limited(responses: dict[str, Any]) -> dict[str, Any]:
    """A mediator's per-account limit ([admin] mediator_*): 429 with Retry-After (RFC 6585 §4)."""
    return {**responses, "429": {
        "description": "a mediator's hourly limit reached: nothing looked up, retry after Retry-After seconds",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
        **_json(_ref("Error"))}}


def _error(text: str) -> dict[str, Any]:
    return {"description": text, **_json(_ref("Error"))}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, **_json(schema)}


def _query(name: str, schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": text}


def _path(name: str, text: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": STR, "description": text}


def _op(op_id: str, summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"operationId": op_id, "summary": summary, "responses": responses, **extra}


DKIM_PROPS: dict[str, Any] = {
    "dkim_selector": {"type": "string", "description": "selector of the pinned key (dkim_policy pinned)"},
    "dkim_public_key": {"type": "string", "description": "pinned public key: PEM, the DNS TXT record as "
                        "opendkim-genkey writes it, or the bare p= value (RSA or Ed25519)"},
    "dkim_required": {"type": "boolean", "description": "a passing DKIM signature is needed even from the "
                      "operator certificate (always needed when no certificate DN is bound)"},
}

# Issue 17: connections each of the operator's addresses may hold on the MX, and those addresses.
CONNECTION_PROPS: dict[str, Any] = {
    "max_connections": {"type": "integer", "nullable": True, "minimum": 1, "maximum": 100_000,
                        "description": "instead of limits.mx_per_address, for each address of networks"},
    "networks": {"description": "the operator's sending addresses (CIDR), a list or one string",
                 "oneOf": [{"type": "array", "items": STR}, {"type": "string", "nullable": True}]},
}
SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error", "message"],
              "properties": {"error": STR, "message": STR}},
    "Domain": {"type": "object", "properties": {
        "name": STR, "status": {"type": "string", "enum": ["active", "suspended"]}, "description": NSTR,
        "operator_dn": NSTR, "dkim_policy": STR, "dkim_selector": NSTR, "dkim_required": BOOL, "route": NSTR,
        "tls_required": BOOL, "max_message_size": {"type": "integer", "nullable": True},
        "max_connections": {"type": "integer", "nullable": True}, "networks": {"type": "array", "items": STR},
        "origin": STR,
        "list_updated_at": NSTR, "modified_at": NSTR}},
    "NewDomain": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string", "example": "hopital.example"}, "description": STR, "operator_dn": STR,
        "route": {"type": "string", "example": "mx.hopital.example:25"},
        "dkim_policy": {"type": "string", "enum": ["dns", "none", "pinned"]}, **DKIM_PROPS, "tls_required": BOOL,
        "max_message_size": {"type": "integer", "minimum": 1024}, **CONNECTION_PROPS}},
    "DomainChanges": {"type": "object", "additionalProperties": False, "minProperties": 1,
                      "description": "only the fields given change; null or an empty string clears an optional one",
                      "properties": {
                          "description": NSTR, "operator_dn": NSTR,
                          "route": {"type": "string", "nullable": True, "example": "mx.hopital.example:25"},
                          "dkim_policy": {"type": "string", "enum": ["dns", "none", "pinned"]}, **DKIM_PROPS,
                          "tls_required": BOOL,
                          "max_message_size": {"type": "integer", "nullable": True, "minimum": 1024},
                          **CONNECTION_PROPS}},
    "UpdatedDomain": {"allOf": [{"$ref": "#/components/schemas/Domain"}, {"type": "object", "properties": {
        "dkim_selector": NSTR, "changed": {"type": "array", "items": STR}}}]},
    "ImportResult": {"type": "object", "properties": {
        "applied": BOOL, "generated_at": NSTR, "counts": {"type": "object", "additionalProperties": INT},
        "added": {"type": "array", "items": STR}, "removed": {"type": "array", "items": STR},
        "changed": {"type": "array", "items": OBJ}, "lines": {"type": "array", "items": STR}}},
    "Pro": {"type": "object", "properties": {
        "address": STR, "type": {"type": "string", "enum": list(TYPES)}, "password_login": BOOL,
        "status": {"type": "string", "enum": ["active", "disabled"]},
        "accepts_patient_initiated": BOOL, "has_password": BOOL, "created_at": NSTR, "last_login_at": NSTR,
        "inactivity_warned_at": NSTR}},
    "NewPro": {"type": "object", "required": ["address"], "properties": {
        "address": {"type": "string", "example": "dr.house@clinic.test"}, "name": STR,
        "password": {"type": "string", "minLength": 12}, "accepts_patient_initiated": BOOL,
        "type": {"type": "string", "enum": list(TYPES), "default": "personal",
                 "description": "personal (one professional), organisational (granted to professionals) or "
                                "application (opened by client certificates)"}}},
    "Bindings": {"type": "object", "properties": {
        "address": STR, "type": {"type": "string", "enum": list(TYPES)}, "status": STR, "password_login": BOOL,
        "identity": {"type": "string", "nullable": True, "description": "the identity provider's subject"},
        "granted": {"type": "array", "items": STR, "description": "organisational mailboxes granted (personal)"},
        "grantees": {"type": "array", "items": STR, "description": "personal mailboxes granted it (organisational)"},
        "certificates": {"type": "array", "items": {"type": "object", "properties": {
            "fingerprint": {"type": "string", "description": "SHA-256 of the DER certificate, hex"},
            "issuer": STR, "subject": STR, "not_after": NSTR, "added_at": NSTR}}}}},
    "BindingChange": {"type": "object", "properties": {
        "subject": {"type": "string", "maxLength": 255, "description": "identity/*: the identity provider's subject "
                    "(Pro Santé Connect SubjectNameID)"},
        "pro": {"type": "string", "description": "grants/*: the personal mailbox's address"},
        "certificate": {"type": "string", "description": "certificates/*: the certificate, PEM"},
        "fingerprint": {"type": "string", "description": "certificates/remove: or its SHA-256 fingerprint"}}},
    "PasswordLogin": {"type": "object", "required": ["allowed"], "properties": {
        "allowed": {"type": "boolean", "description": "false: password logins refused for this account "
                    "(answered as a wrong password); [auth] password_login = false refuses them for all"}}},
    "NewPassword": {"type": "object", "required": ["password"], "properties": {
        "password": {"type": "string", "minLength": 12, "maxLength": 200,
                     "description": "the new password, kept as given (no line break)"}}},
    "ProDetails": {"allOf": [{"$ref": "#/components/schemas/Pro"}, {"type": "object", "properties": {
        "name": NSTR, "domain": NSTR, "folders": INT, "messages": INT, "mailbox_bytes": INT}}]},
    "Deletion": {"type": "object", "required": ["ins"], "properties": {
        "ins": {"type": "string", "description": "15-character INS (NIR/NIA with key)"},
        "purge_now": {"type": "boolean", "description": "purge in this request (default: the deletion-requests "
                                                       "job purges it at its next run)"}}},
    "PatientSummary": {"type": "object", "description": "INS masked", "properties": {
        "id": INT, "ins": STR, "state": STR, "closed_at": NSTR, "purge_after": NSTR, "deletion_requested_at": NSTR,
        "purged_at": NSTR, "messages_deleted": {"type": "integer", "nullable": True}}},
    "QueueEntryDetails": {"allOf": [{"$ref": "#/components/schemas/QueueEntry"}, {"type": "object", "properties": {
        "lease_until": NSTR, "envelope": {"type": "object", "nullable": True,
                                          "description": "sender, recipients, DSN parameters; a patient's INS and "
                                                         "personal address masked; never the message",
                                          "additionalProperties": True}}}]},
    "QuotaQuery": {"type": "object", "required": ["mailbox"], "properties": {
        "mailbox": {"type": "string", "description": "a professional's address, or a patient's INS"}}},
    "QuotaChange": {"type": "object", "required": ["mailbox"], "properties": {
        "mailbox": {"type": "string", "description": "a professional's address, or a patient's INS"},
        **{name: {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "enum": ["default"]}],
                  "description": f"{what}: a number (0: no limit) or 'default' (the configured [quota]); "
                                 "absent: unchanged"}
           for name, what in (("storage_kib", "STORAGE limit in KiB"), ("messages", "MESSAGE limit"))}}},
    "Quota": {"type": "object", "properties": {
        "mailbox": {"type": "string", "description": "the address, or the patient's INS masked"},
        **{f"{r}_{k}": {"type": "integer", "nullable": k in ("limit", "set"), "description": d}
           for r in ("storage_kib", "messages")
           for k, d in (("used", "usage"), ("limit", "limit in force (null: none)"),
                        ("set", "the mailbox's own value (null: the default; 0: no limit)"),
                        ("default", "the configured default (0: no limit)"))},
        "full": {"type": "boolean", "description": "at a limit: new mail gets 452 4.2.2"}}},
    "InsQuery": {"type": "object", "required": ["ins"], "properties": {
        "ins": {"type": "string", "description": "15-character INS (NIR/NIA with key)"}}},
    "NewPatient": {"type": "object", "required": ["ins"], "properties": {
        "ins": STR, "email": {"type": "string", "description": "personal address for notifications"},
        "open": BOOL}},
    "Patient": {"type": "object", "description": "state, dates and access history; never content",
                "properties": {"ins": STR, "address": STR, "state": STR, "activation_code": STR,
                               "history": {"type": "array", "items": OBJ}}, "additionalProperties": True},
    "Space": {"type": "object", "description": "what a mediator may see of a patient space: never content, "
              "history, correspondents nor the personal address", "properties": {
                  "ins_masked": STR, "state": STR, "state_label": STR, "activated": BOOL,
                  "code_valid_until": NSTR, "personal_email_on_file": BOOL, "can_issue_code": BOOL}},
    "NewCode": {"type": "object", "required": ["ins"], "properties": {
        "ins": STR, "send": {"type": "boolean", "description": "mail the code to the personal address on file "
                                                               "instead of returning it"}}},
    "IssuedCode": {"type": "object", "properties": {
        "state": STR, "delivery": {"type": "string", "enum": ["show", "mail"]},
        "activation_code": {"type": "string", "nullable": True, "description": "shown once; null when mailed"},
        "expires_at": STR}, "additionalProperties": True},
    "Queue": {"type": "object", "properties": {
        "counts": {"type": "object", "additionalProperties": INT},
        "oldest_pending_age_seconds": {"type": "integer", "nullable": True},
        "entries": {"type": "array", "items": _ref("QueueEntry")}}},
    "QueueEntry": {"type": "object", "properties": {
        "id": STR, "domain": STR, "kind": STR, "status": STR, "attempts": INT, "size": INT, "age_seconds": INT,
        "created_at": NSTR, "next_attempt_at": NSTR, "expires_at": NSTR, "finished_at": NSTR,
        "in_delivery": BOOL, "last_error": NSTR}},
    "AuditEntry": {"type": "object", "properties": {
        "id": INT, "at": STR, "actor": STR, "action": STR, "subject": NSTR, "peer": NSTR, "details": {},
        "hash": STR,
        "sealed": {"type": "boolean", "description": "about a patient: stored sealed under the patient's data key, "
                   "opened for this view (issue 20)"},
        "shredded": {"type": "boolean", "description": "the patient's keys are destroyed (purged space): subject "
                     "'<kind>:[shredded]', no peer, no details"}}},
    "ChainReport": {"type": "object", "properties": {
        "ok": BOOL, "entries": INT, "first_bad_id": {"type": "integer", "nullable": True}, "problem": NSTR,
        "start_id": {"type": "integer", "nullable": True}, "checkpoints": INT, "pruned": INT,
        "pruned_until": {"type": "string", "format": "date-time", "nullable": True}, "prune_pending": BOOL,
        "bad_checkpoint": {"type": "integer", "nullable": True}}},
    "Stats": {"type": "object", "additionalProperties": True, "properties": {
        "mailboxes_created": INT, "opposition_rate": {"type": "number"}, "activation_rate": {"type": "number"},
        "active_users_30d": INT, "messages_30d": INT, "documents_30d": INT, "by_state": OBJ, "series": OBJ}},
}

STATUS_DOMAIN = _query("status", {"type": "string", "enum": ["active", "suspended"]}, "filter by status")
AUDIT_PARAMS = [
    _query("actor", STR, "exact actor, or a prefix ending with *"),
    _query("action", STR, "exact action, or a prefix ending with *"),
    _query("subject", STR, "subject reference (patient:<id>, domain:<name>...) or an INS; a patient (as "
           "patient:<id> or an INS, here or in actor) finds every entry concerning the patient, by its keyed index"),
    _query("since", {"type": "string", "format": "date-time"}, "from this instant (ISO 8601)"),
    _query("until", {"type": "string", "format": "date-time"}, "up to this instant (ISO 8601)"),
]


def spec(server_url: str = "/admin/api") -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/stats": {"get": _op("stats", "Adoption figures and daily series", _ok(_ref("Stats")))},
        "/domains": {
            "get": _op("listDomains", "The trust list", _ok({"type": "array", "items": _ref("Domain")}),
                       parameters=[STATUS_DOMAIN]),
            "post": _op("addDomain", "Add a trusted domain", _ok(_ref("Domain"), "201", "Created"),
                        requestBody=_body(_ref("NewDomain")))},
        "/domains/import": {"post": _op(
            "importTrustList", "Preview (default) or apply an import of the liste blanche XML",
            _ok(_ref("ImportResult")), parameters=[_query("apply", BOOL, "apply the changes (default: preview)")],
            requestBody={"required": True, "content": {"application/xml": {"schema": STR}}})},
        "/domains/{name}": {"patch": _op(
            "setDomain", "Edit a trusted domain in place (one transaction; audited with what changed)",
            _ok(_ref("UpdatedDomain")), parameters=[_path("name", "domain name")],
            requestBody=_body(_ref("DomainChanges")))},
        "/domains/{name}/{action}": {"post": _op(
            "setDomainStatus", "Suspend or resume a trusted domain", _ok(_ref("Domain")),
            parameters=[_path("name", "domain name"),
                        {"name": "action", "in": "path", "required": True,
                         "schema": {"type": "string", "enum": ["suspend", "resume"]}}])},
        "/pros": {
            "get": _op("listPros", "Professional accounts hosted here", _ok({"type": "array", "items": _ref("Pro")}),
                       parameters=[_query("status", {"type": "string", "enum": ["active", "disabled"]}, "filter")]),
            "post": _op("addPro", "Add a professional account on a hosted domain", _ok(_ref("Pro"), "201", "Created"),
                        requestBody=_body(_ref("NewPro")))},
        "/pros/{address}": {"get": _op(
            "showPro", "One account with its display name and mailbox size (never a message)",
            _ok(_ref("ProDetails")), parameters=[_path("address", "account address")])},
        "/pros/{address}/password": {"post": _op(
            "setProPassword", "Set or reset a professional account's password (its failed-login lockout is cleared)",
            _ok(_ref("Pro")), parameters=[_path("address", "account address")],
            requestBody=_body(_ref("NewPassword")))},
        "/pros/{address}/bindings": {"get": _op(
            "showProBindings", "A mailbox's type, identity, grants and certificates", _ok(_ref("Bindings")),
            parameters=[_path("address", "account address")])},
        "/pros/{address}/password-login": {"post": _op(
            "setProPasswordLogin", "Allow or refuse password logins for one account (audited)", _ok(_ref("Pro")),
            parameters=[_path("address", "account address")], requestBody=_body(_ref("PasswordLogin")))},
        "/pros/{address}/{what}/{change}": {"post": _op(
            "changeProBinding", "Bind or unbind: identity (personal mailbox, {subject}), grants (organisational "
            "mailbox, {pro}), certificates (application mailbox, {certificate} PEM, or {fingerprint} to remove); "
            "409 for a mailbox of the wrong type or an identity bound elsewhere; audited", _ok(_ref("Bindings")),
            parameters=[_path("address", "account address"),
                        {"name": "what", "in": "path", "required": True,
                         "schema": {"type": "string", "enum": ["identity", "grants", "certificates"]}},
                        {"name": "change", "in": "path", "required": True,
                         "schema": {"type": "string", "enum": ["add", "remove"]}}],
            requestBody=_body(_ref("BindingChange")))},
        "/pros/{address}/{action}": {"post": _op(
            "setProStatus", "Disable or enable a professional account (disable: logins refused and open "
            "IMAP/SMTP sessions ended)", _ok(_ref("Pro")),
            parameters=[_path("address", "account address"),
                        {"name": "action", "in": "path", "required": True,
                         "schema": {"type": "string", "enum": ["disable", "enable"]}}])},
        "/patients": {"post": _op("provisionPatient", "Provision a patient space (returns its activation code)",
                                  _ok(_ref("Patient"), "201", "Created"), requestBody=_body(_ref("NewPatient")))},
        "/patients/lookup": {"post": _op("lookupPatient", "A patient space's state and access history by INS",
                                         _ok(_ref("Patient")), requestBody=_body(_ref("InsQuery")))},
        "/mediation/lookup": {"post": _op(
            "mediationLookup", "A patient space's state by INS (mediators and admins)", _limited(_ok(_ref("Space"))),
            requestBody=_body(_ref("InsQuery")))},
        "/mediation/new-code": {"post": _op(
            "mediationNewCode", "Issue a new activation code (mediators and admins): returned once, or mailed; "
            "409 for a space opposed, closed or purged, or with no personal address when send is true",
            _limited(_ok(_ref("IssuedCode"), "201", "Issued")), requestBody=_body(_ref("NewCode")))},
        "/patients/close": {"post": _op(
            "closePatient", "Close a space on the patient's behalf (archived, then purged after the retention)",
            _ok(_ref("PatientSummary")), requestBody=_body(_ref("InsQuery")))},
        "/patients/deletion": {"post": _op(
            "requestPatientDeletion", "Record a patient's deletion request (space closed, purged by the job or now)",
            _ok(_ref("PatientSummary")), requestBody=_body(_ref("Deletion")))},
        "/quota/lookup": {"post": _op(
            "showQuota", "A mailbox's quota (RFC 9208 STORAGE, MESSAGE): limits, defaults, usage",
            _ok(_ref("Quota")), requestBody=_body(_ref("QuotaQuery")))},
        "/quota": {"post": _op(
            "setQuota", "Set a mailbox's quota limits (audited as quota.set with the old and new values)",
            _ok(_ref("Quota")), requestBody=_body(_ref("QuotaChange")))},
        "/queue/{entry}": {"get": _op(
            "showQueueEntry", "One entry with its envelope (audited; never the message)",
            _ok(_ref("QueueEntryDetails")), parameters=[_path("entry", "entry id")])},
        "/queue": {"get": _op("listQueue", "Outbound queue entries with state and age", _ok(_ref("Queue")),
                              parameters=[_query("status", {"type": "string", "enum": [
                                  "pending", "sent", "bounced", "expired", "cancelled"]}, "filter"),
                                  _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "rows")])},
        "/queue/{entry}/{action}": {"post": _op(
            "queueAction", "Retry now, bounce (sender notified) or cancel a pending entry", _ok(_ref("QueueEntry")),
            parameters=[_path("entry", "entry id"),
                        {"name": "action", "in": "path", "required": True,
                         "schema": {"type": "string", "enum": ["retry", "bounce", "cancel"]}}])},
        "/audit": {"get": _op("searchAudit", "Search the audit trail (newest first)",
                              _ok({"type": "array", "items": _ref("AuditEntry")}),
                              parameters=[*AUDIT_PARAMS,
                                          _query("before_id", {"type": "integer", "minimum": 1}, "paging"),
                                          _query("limit", {"type": "integer", "minimum": 1, "maximum": 500},
                                                 "rows")])},
        "/audit/export": {"get": _op(
            "exportAudit", "Export matching entries as JSON Lines or CSV",
            {"200": {"description": "the entries", "content": {"application/x-ndjson": {"schema": STR},
                                                              "text/csv": {"schema": STR}}},
             "400": _error("invalid input"), "401": _error("missing or invalid admin token")},
            parameters=[*AUDIT_PARAMS, _query("format", {"type": "string", "enum": ["jsonl", "csv"]}, "format")])},
        "/audit/verify": {"post": _op("verifyAudit", "Verify the audit trail's hash chain", _ok(_ref("ChainReport")))},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "Health messaging gateway: admin API", "version": "1",
                 "description": "Trust list, professional accounts, patient spaces, outbound queue, audit, "
                                "adoption figures. Every change is audited as admin:<name>. Mediator tokens "
                                "('gateway mediator token NAME', audited as mediator:<name>) open only "
                                "/mediation/*; anything else answers 403."},
        "servers": [{"url": server_url or "/admin/api"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "token from 'gateway admin token NAME'"}}},
    }
