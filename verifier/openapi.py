"""The OpenAPI 3.1 document of the HTTP API (kept true by tests/test_web.py: routes and response bodies)."""

from __future__ import annotations

from typing import Any

from verifier import __version__
from verifier.appraise.catalog import CHECK_IDS, REASONS

_NULLABLE_STR = {"type": ["string", "null"]}
_NULLABLE_INT = {"type": ["integer", "null"]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_CORRUPT = _error("ledger_corrupt: the stored verdict is not one the verifier wrote (edited outside it)")


SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "request_id"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}},
            },
            "request_id": {"type": "string"},
        },
    },
    "VerificationRequest": {
        "type": "object",
        "description": "Give request or request_b64, and response or response_b64 (base64 for exact bytes).",
        "required": ["model"],
        "additionalProperties": False,
        "properties": {
            "request": {"type": "string", "description": "exact request body sent to the gateway (UTF-8 text)"},
            "request_b64": {"type": "string", "contentEncoding": "base64"},
            "response": {"type": "string", "description": "exact response body received (an SSE stream as received)"},
            "response_b64": {"type": "string", "contentEncoding": "base64"},
            "model": {"type": "string"},
            "chat_id": {"type": "string", "description": "default: the response's id (first SSE chunk for streams)"},
            "gateway": {"type": "string", "description": "base URL; must be in the server's allow-list"},
            "signing_algo": {"type": "string", "enum": ["ecdsa", "ed25519"], "default": "ecdsa"},
        },
    },
    "Check": {
        "type": "object",
        "required": ["id", "status", "severity", "reason", "message", "details"],
        "properties": {
            "id": {"type": "string", "enum": sorted(CHECK_IDS)},
            "status": {"type": "string", "enum": ["pass", "fail", "indeterminate", "skipped"]},
            "severity": {"type": "string", "enum": ["required", "advisory", "off"]},
            "reason": {"type": ["string", "null"], "enum": [*sorted(REASONS), None]},
            "message": {"type": "string"},
            "details": {"type": "object"},
        },
    },
    "Verdict": {
        "type": "object",
        "required": [
            "id",
            "status",
            "trust_profile",
            "simulator",
            "subject",
            "nonce",
            "times",
            "policy",
            "versions",
            "checks",
            "claims",
            "notes",
            "collateral",
            "attestation",
            "anchors",
            "trust_vector",
            "refs",
            "supersedes",
        ],
        "additionalProperties": False,
        "properties": {
            "id": {"type": ["string", "null"]},
            "status": {"type": "string", "enum": ["pass", "fail", "indeterminate"]},
            "trust_profile": {"type": "string"},
            "simulator": {
                "type": "boolean",
                "description": "true when the verdict was made against the simulator's test anchors",
            },
            "subject": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    **{
                        k: _NULLABLE_STR
                        for k in (
                            "model",
                            "chat_id",
                            "gateway",
                            "signing_algo",
                            "signer",
                            "request_sha256",
                            "response_sha256",
                            "signed_text",
                        )
                    },
                    "model_binding": {
                        "type": "object",
                        "required": ["by", "names"],
                        "description": "what bound the model: app_id_pin, signed_text, attestation, or nothing",
                        "properties": {
                            "by": {
                                "type": "array",
                                "items": {
                                    "type": "string",
                                    "enum": ["app_id_pin", "signed_text", "attestation", "nothing"],
                                },
                            },
                            "names": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                },
            },
            "nonce": {"type": "object", "properties": {"value": _NULLABLE_STR, "origin": _NULLABLE_STR}},
            "times": {
                "type": "object",
                "required": ["verified_at"],
                "properties": {
                    "verified_at": {"type": "integer"},
                    "captured_at": _NULLABLE_INT,
                    "evaluated_at": {"type": "number"},
                    "duration_ms": {"type": "number"},
                },
            },
            "policy": {
                "type": "object",
                "required": ["id", "sha256"],
                "properties": {"id": {"type": "string"}, "sha256": {"type": "string"}},
            },
            "versions": {"type": "object"},
            "checks": {"type": "array", "items": _ref("Check")},
            "claims": {"type": "object"},
            "notes": {"type": "array", "items": {"type": "object", "required": ["code", "message"]}},
            "collateral": {"type": "array"},
            "attestation": {
                "type": "object",
                "additionalProperties": False,
                "required": ["format", "paths", "hops", "origin", "fetched_at", "reused_from", "age_s"],
                "properties": {
                    "format": _NULLABLE_STR,
                    "paths": {"type": "array", "items": {"type": "string"}},
                    "hops": {"type": "array", "items": {"type": "string"}},
                    "origin": {"type": "string", "enum": ["fetched", "reused", "recorded"]},
                    "fetched_at": _NULLABLE_INT,
                    "reused_from": _NULLABLE_STR,
                    "age_s": _NULLABLE_INT,
                },
            },
            "anchors": {"type": "object"},
            "trust_vector": {
                "type": "object",
                "description": "AR4SI trustworthiness vector, one tier per aspect, from the checks",
                "additionalProperties": {
                    "type": "object",
                    "required": ["tier", "value", "because"],
                    "properties": {
                        "tier": {"type": "string", "enum": ["none", "affirming", "warning", "contraindicated"]},
                        "value": {"type": "integer"},
                        "because": {"type": "string"},
                    },
                },
            },
            "refs": {
                "type": ["object", "null"],
                "description": "id and sha256 of the reference values appraised against",
            },
            "supersedes": _NULLABLE_STR,
        },
    },
    "VerificationSummary": {
        "type": "object",
        "required": ["id", "status"],
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string"},
            "model": _NULLABLE_STR,
            "signer": _NULLABLE_STR,
        },
    },
    "VerificationList": {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {"items": {"type": "array", "items": _ref("VerificationSummary")}, "next_cursor": _NULLABLE_STR},
    },
    "Key": {
        "type": "object",
        "required": ["id", "role", "name", "created_at", "revoked_at"],
        "properties": {
            "id": {"type": "string"},
            "role": {"type": "string", "enum": ["submit", "read", "metrics", "admin"]},
            "name": {"type": "string"},
            "created_at": {"type": "number"},
            "revoked_at": {"type": ["number", "null"]},
        },
    },
    "NewKey": {
        "allOf": [
            _ref("Key"),
            {
                "type": "object",
                "required": ["key"],
                "properties": {"key": {"type": "string", "description": "the key itself: shown only here"}},
            },
        ],
    },
    "KeyList": {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": _ref("Key")}},
    },
    "Job": {
        "type": "object",
        "required": [
            "id",
            "kind",
            "state",
            "total",
            "done",
            "changed",
            "errors",
            "rate",
            "eta_s",
            "by_change",
            "by_reason",
            "clocks",
        ],
        "properties": {
            "id": {"type": "string"},
            "kind": {"type": "string", "enum": ["reverify"]},
            "state": {"type": "string", "enum": ["queued", "running", "interrupted", "cancelled", "done"]},
            "total": {"type": "integer", "description": "the selection's size, frozen when the job was created"},
            "done": {"type": "integer"},
            "changed": {"type": "integer"},
            "errors": {"type": "integer"},
            "rate": {"type": ["number", "null"], "description": "verdicts per second in the current run"},
            "eta_s": {"type": ["number", "null"]},
            "created_at": {"type": "number"},
            "started_at": {"type": ["number", "null"], "description": "when its first run started (unix seconds)"},
            "finished_at": {"type": ["number", "null"], "description": "when it became done or cancelled"},
            "at": _NULLABLE_INT,
            "collateral": {"type": "string"},
            "by_change": {
                "type": "object",
                "additionalProperties": {"type": "integer"},
                "description": 'e.g. {"pass→fail": 3}',
            },
            "by_reason": {"type": "object", "additionalProperties": {"type": "integer"}},
            "clocks": {
                "type": "object",
                "description": "verdict statuses summed at capture time and at the job's time",
                "properties": {"captured": {"type": "object"}, "job": {"type": "object"}},
            },
        },
    },
    "JobList": {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": _ref("Job")}},
    },
    "JobRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "kind": {"type": "string", "enum": ["reverify"]},
            "filter": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "status": {"type": "string", "enum": ["pass", "fail", "indeterminate"]},
                    "model": {"type": "string"},
                    "signer": {"type": "string"},
                    "gateway": {"type": "string"},
                    "since": {"type": "integer"},
                    "until": {"type": "integer"},
                    "ids": {"type": "array", "items": {"type": "string"}},
                    **{
                        name: {"type": "string"}
                        for name in ("tcb_status", "advisory", "fmspc", "app_id", "compose_hash", "driver")
                    },
                },
            },
            "policy": {"type": "string", "description": "policy TOML text, or the id of the service's policy"},
            "at": {"oneOf": [{"type": "string", "enum": ["captured", "now"]}, {"type": "integer"}]},
            "collateral": {"type": "string", "enum": ["recorded", "refresh", "early"]},
        },
    },
    "Health": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
    "Ready": {
        "type": "object",
        "required": ["status", "database", "dcap_workers"],
        "properties": {
            "status": {"type": "string"},
            "database": {"type": "boolean"},
            "dcap_workers": {"type": "boolean"},
        },
    },
}

_B64 = {"type": "string", "contentEncoding": "base64"}
SCHEMAS.update(
    {  # signed, portable results: the transparency log's proofs and the EAR keys
        "InclusionProof": {
            "type": "object",
            "required": ["verdict_id", "log_index", "tree_size", "leaf_hash", "inclusion_path", "checkpoint"],
            "properties": {
                "verdict_id": {"type": "string"},
                "log_index": {"type": "integer"},
                "tree_size": {"type": "integer"},
                "leaf_hash": _B64,
                "inclusion_path": {"type": "array", "items": _B64},
                "checkpoint": {"type": ["string", "null"], "description": "the signed checkpoint of tree_size"},
            },
        },
        "ConsistencyProof": {
            "type": "object",
            "required": ["from", "to", "old_root", "new_root", "consistency_path"],
            "properties": {
                "from": {"type": "integer"},
                "to": {"type": "integer"},
                "old_root": _B64,
                "new_root": _B64,
                "consistency_path": {"type": "array", "items": _B64},
            },
        },
        "Jwks": {
            "type": "object",
            "required": ["keys"],
            "properties": {
                "keys": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["kty", "crv", "x", "kid"],
                        "properties": {
                            "kty": {"const": "OKP"},
                            "crv": {"const": "Ed25519"},
                            "x": {"type": "string"},
                            "kid": {"type": "string"},
                        },
                    },
                }
            },
        },
    }
)

_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_AUTH_ERRORS = {
    "401": _error("no API key, or an unknown or revoked one"),
    "403": _error("the key's role may not use this route"),
    "429": _error("the key's rate limit is exceeded (Retry-After says when to retry)"),
}


def _secured(op: dict[str, Any], roles: str) -> dict[str, Any]:
    """An operation that needs an API key of one of ``roles``."""
    return {
        **op,
        "description": f"roles: {roles}",
        "security": [{"bearer": []}],
        "responses": {**op["responses"], **_AUTH_ERRORS},
    }


def _text(description: str, media: str = "text/plain") -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": {"type": "string"}}}}


def _signed_paths(readers: str) -> dict[str, Any]:
    """The EAR, JWKS and transparency-log routes."""
    size = {
        "name": "size",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1},
        "description": "the tree size to prove inclusion in (default: the current one)",
    }
    sizes = [
        {"name": n, "in": "query", "required": True, "schema": {"type": "integer", "minimum": 0}}
        for n in ("from", "to")
    ]
    return {
        "/v1/verifications/{id}/ear": {
            "get": _secured(
                {
                    "summary": "The verdict as a signed EAT Attestation Result (draft-ietf-rats-ear-04, EdDSA JWT)",
                    "parameters": [_ID],
                    "responses": {
                        "200": _text("the EAR (compact JWT)", "application/jwt"),
                        "404": _error("unknown id"),
                        "409": _CORRUPT,
                    },
                },
                readers,
            ),
        },
        "/.well-known/jwks.json": {
            "get": {
                "summary": "The EAR signing keys (current first, retired ones kept)",
                "responses": {"200": _json(_ref("Jwks"), "the JWKS")},
            }
        },
        "/v1/log/key": {
            "get": {
                "summary": "The transparency log's verifier key (C2SP signed-note vkey)",
                "responses": {"200": _text("name+keyid+key"), "404": _error("no log key")},
            }
        },
        "/v1/log/checkpoint": {
            "get": _secured(
                {
                    "summary": "The signed checkpoint (C2SP tlog-checkpoint) of the verdict log's current head",
                    "responses": {"200": _text("the signed note"), "503": _error("the ledger is busy")},
                },
                "read, admin",
            ),
        },
        "/v1/log/proof/{id}": {
            "get": _secured(
                {
                    "summary": "RFC 9162 inclusion proof of a verdict in the tree of `size` leaves",
                    "parameters": [_ID, size],
                    "responses": {
                        "200": _json(_ref("InclusionProof"), "the proof"),
                        "404": _error("unknown id"),
                        "400": _error("a size that does not hold the verdict"),
                    },
                },
                "read, admin",
            ),
        },
        "/v1/log/consistency": {
            "get": _secured(
                {
                    "summary": "RFC 9162 consistency proof between two tree sizes",
                    "parameters": sizes,
                    "responses": {
                        "200": _json(_ref("ConsistencyProof"), "the proof"),
                        "400": _error("sizes outside 0 <= from <= to <= the tree size"),
                    },
                },
                "read, admin",
            ),
        },
    }


def _api_document() -> dict[str, Any]:
    list_params = [
        {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["pass", "fail", "indeterminate"]}},
        {"name": "model", "in": "query", "schema": {"type": "string"}},
        {"name": "signer", "in": "query", "schema": {"type": "string"}},
        {
            "name": "since",
            "in": "query",
            "schema": {"type": "integer"},
            "description": "created at or after (unix seconds)",
        },
        {"name": "until", "in": "query", "schema": {"type": "integer"}, "description": "created before (unix seconds)"},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
        *(
            {
                "name": name,
                "in": "query",
                "schema": {"type": "string"},
                "description": f"verdicts whose claims include this {name}",
            }
            for name in ("tcb_status", "advisory", "fmspc", "app_id", "compose_hash", "driver")
        ),
    ]
    readers = "submit (its own verdicts only), read, admin"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Attestation verifier",
            "version": __version__,
            "description": "Verifies that confidential-AI chat completions came from genuine TEE hardware. Every route "
            "except /healthz, /readyz and /openapi.json needs `Authorization: Bearer <API key>`.",
        },
        "paths": {
            "/v1/verifications": {
                "post": _secured(
                    {
                        "summary": "Verify one completion with a freshly minted nonce and record the verdict",
                        "parameters": [
                            {
                                "name": "X-Upstream-Authorization",
                                "in": "header",
                                "schema": {"type": "string"},
                                "description": "the gateway API key; used for the upstream calls, never stored or "
                                "logged",
                            }
                        ],
                        "requestBody": {
                            "required": True,
                            "content": {"application/json": {"schema": _ref("VerificationRequest")}},
                        },
                        "responses": {
                            "201": _json(_ref("Verdict"), "the recorded verdict (its status describes the evidence)"),
                            "400": _error("bad input, naming the field"),
                            "413": _error("body too large"),
                            "503": _error(
                                "overloaded (in-flight evidence over the limit) or the ledger is busy: "
                                "nothing was recorded; Retry-After says when to retry"
                            ),
                        },
                    },
                    "submit, admin",
                ),
                "get": _secured(
                    {
                        "summary": "List verdicts, newest first",
                        "parameters": list_params,
                        "responses": {
                            "200": _json(_ref("VerificationList"), "a page of verdicts"),
                            "400": _error("bad query parameter"),
                        },
                    },
                    readers,
                ),
            },
            "/v1/verifications/{id}": {
                "get": _secured(
                    {
                        "summary": "One verdict",
                        "parameters": [_ID],
                        "responses": {
                            "200": _json(_ref("Verdict"), "the verdict"),
                            "404": _error("unknown id"),
                            "409": _CORRUPT,
                        },
                    },
                    readers,
                ),
            },
            "/v1/verifications/{id}/bundle": {
                "get": _secured(
                    {
                        "summary": "The evidence bundle (zip) of a verdict, for `verifier verify-bundle`",
                        "parameters": [_ID],
                        "responses": {
                            "200": {
                                "description": "zip",
                                "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
                            },
                            "404": _error("unknown id"),
                            "409": _CORRUPT,
                        },
                    },
                    readers,
                ),
            },
            "/v1/verifications/{id}/reverify": {
                "post": _secured(
                    {
                        "summary": "Re-evaluate the stored bundle offline; the new verdict supersedes the old",
                        "parameters": [_ID],
                        "requestBody": {
                            "required": False,
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "additionalProperties": False,
                                        "properties": {
                                            "at": {"type": "integer", "description": "verification time (unix seconds)"}
                                        },
                                    }
                                }
                            },
                        },
                        "responses": {
                            "201": _json(_ref("Verdict"), "the new verdict"),
                            "404": _error("unknown id"),
                            "409": _CORRUPT,
                            "400": _error("bad input"),
                            "503": _error("the ledger is busy"),
                        },
                    },
                    "admin",
                ),
            },
            "/v1/keys": {
                "get": _secured(
                    {
                        "summary": "The API keys (ids, roles, names; never the keys)",
                        "responses": {"200": _json(_ref("KeyList"), "every key, revoked ones too")},
                    },
                    "admin",
                ),
                "post": _secured(
                    {
                        "summary": "Create an API key; the answer is the only time the key is shown",
                        "requestBody": {
                            "required": True,
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["role"],
                                        "additionalProperties": False,
                                        "properties": {
                                            "role": {"type": "string", "enum": ["submit", "read", "metrics", "admin"]},
                                            "name": {"type": "string"},
                                        },
                                    }
                                }
                            },
                        },
                        "responses": {"201": _json(_ref("NewKey"), "the new key"), "400": _error("bad input")},
                    },
                    "admin",
                ),
            },
            "/v1/keys/{id}/revoke": {
                "post": _secured(
                    {
                        "summary": "Revoke an API key (it stops working at once)",
                        "parameters": [_ID],
                        "responses": {"200": _json(_ref("Key"), "the revoked key"), "404": _error("unknown key")},
                    },
                    "admin",
                ),
            },
            "/v1/jobs": {
                "post": _secured(
                    {
                        "summary": "Start a batch re-verification job over recorded verdicts",
                        "requestBody": {
                            "required": True,
                            "content": {"application/json": {"schema": _ref("JobRequest")}},
                        },
                        "responses": {
                            "202": _json(_ref("Job"), "the queued job (it runs in the background)"),
                            "400": _error("bad input, naming the field"),
                        },
                    },
                    "admin",
                ),
                "get": _secured(
                    {"summary": "Jobs, newest first", "responses": {"200": _json(_ref("JobList"), "jobs")}},
                    "read, admin",
                ),
            },
            "/v1/jobs/{id}": {
                "get": _secured(
                    {
                        "summary": "One job: state, counts, rate, ETA, both clocks",
                        "parameters": [_ID],
                        "responses": {"200": _json(_ref("Job"), "the job"), "404": _error("unknown id")},
                    },
                    "read, admin",
                ),
            },
            "/v1/jobs/{id}/cancel": {
                "post": _secured(
                    {
                        "summary": "Cancel a job (it stops after its current batch)",
                        "parameters": [_ID],
                        "responses": {"200": _json(_ref("Job"), "the job"), "404": _error("unknown id")},
                    },
                    "admin",
                ),
            },
            "/metrics": {
                "get": _secured(
                    {
                        "summary": "Prometheus metrics (text exposition format)",
                        "responses": {
                            "200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}
                        },
                    },
                    "read, metrics, admin",
                )
            },
            **_signed_paths(readers),
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": _json(_ref("Health"), "alive")}}},
            "/readyz": {
                "get": {
                    "summary": "Readiness: database writable, dcap workers alive",
                    "responses": {"200": _json(_ref("Ready"), "ready"), "503": _json(_ref("Ready"), "not ready")},
                }
            },
            "/openapi.json": {
                "get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1 document"}}}
            },
        },
        "components": {"schemas": SCHEMAS, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


# --- the audit dashboard (verifier.web.ui): HTML pages behind a cookie session, documented so the route test sees
# every route; their roles are enforced by the dashboard's own middleware (tests/test_ui_auth.py).
UI_PAGES: tuple[tuple[str, str, str, str | None], ...] = (
    ("get", "/ui/login", "The dashboard's login form", None),
    ("post", "/ui/login", "Log in with an API key (read or admin): sets the session cookie, 303 to the page", None),
    ("get", "/ui/static/ui.css", "The dashboard's stylesheet", None),
    ("post", "/ui/logout", "Log out (form with the CSRF token)", "read, admin"),
    (
        "get",
        "/ui/",
        "Overview: counts per status per model and gateway, per day, top reasons, newest failures",
        "read, admin",
    ),
    (
        "get",
        "/ui/verifications",
        "The verdict list with facets and keyset paging (the URL is the filter)",
        "read, admin",
    ),
    ("get", "/ui/verifications.{fmt}", "The filtered list as CSV or JSON (fmt: csv or json)", "read, admin"),
    (
        "get",
        "/ui/verifications/{id}",
        "One verdict: checks with got/expected, claims, trust vector, evidence",
        "read, admin",
    ),
    ("get", "/ui/verifications/{id}/bundle", "The verdict's evidence bundle (zip)", "read, admin"),
    (
        "post",
        "/ui/verifications/{id}/reverify",
        "Re-verify (form with the CSRF token); 303 to the new verdict",
        "admin",
    ),
    ("get", "/ui/signers", "Signers: first/last seen, verdicts per status, models", "read, admin"),
    ("get", "/ui/signers/{address}", "One signer: models, software identities, reuse, verdict history", "read, admin"),
    (
        "get",
        "/ui/jobs",
        "Re-verification jobs, newest first, with progress, rate and ETA (keyset paging)",
        "read, admin",
    ),
    ("get", "/ui/jobs.{fmt}", "The job list as CSV or JSON (fmt: csv or json)", "read, admin"),
    (
        "get",
        "/ui/jobs/{id}",
        "One job: progress, changes by kind and reason, the changed verdicts with both clocks",
        "read, admin",
    ),
    ("post", "/ui/jobs/{id}/cancel", "Cancel the job (form with the CSRF token); 303 to the job", "admin"),
    ("post", "/ui/jobs/{id}/resume", "Resume a stopped job (form with the CSRF token); 303 to the job", "admin"),
)


def _ui_operation(summary: str, roles: str | None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "tags": ["dashboard"],
        "responses": {
            "200": {"description": "an HTML page (or a file)"},
            "303": {"description": "a redirect (to the login form without a session)"},
        },
    }
    if roles is not None:
        op.update(description=f"dashboard roles: {roles} (session cookie from /ui/login)", security=[{"cookie": []}])
        op["responses"].update(
            {
                "401": {"description": "no session (forms)"},
                "403": {"description": "role not admitted, or a missing/wrong CSRF token"},
            }
        )
    return op


def openapi_document() -> dict[str, Any]:
    doc = _api_document()
    doc["components"]["securitySchemes"]["cookie"] = {"type": "apiKey", "in": "cookie", "name": "verifier_ui"}
    for method, path, summary, roles in UI_PAGES:
        doc["paths"].setdefault(path, {})[method] = _ui_operation(summary, roles)
    return doc
