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
        "required": ["id", "status", "trust_profile", "simulator", "subject", "nonce", "times", "policy", "versions", "checks", "notes"],
        "properties": {
            "id": {"type": ["string", "null"]},
            "status": {"type": "string", "enum": ["pass", "fail", "indeterminate"]},
            "trust_profile": {"type": "string"},
            "simulator": {"type": "boolean", "description": "true when the verdict was made against the simulator's test anchors"},
            "subject": {
                "type": "object",
                "properties": {
                    k: _NULLABLE_STR
                    for k in ("model", "chat_id", "gateway", "signing_algo", "signer", "request_sha256", "response_sha256", "signed_text")
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
            "policy": {"type": "object", "required": ["id", "sha256"], "properties": {"id": {"type": "string"}, "sha256": {"type": "string"}}},
            "versions": {"type": "object"},
            "checks": {"type": "array", "items": _ref("Check")},
            "claims": {"type": "object"},
            "notes": {"type": "array", "items": {"type": "object", "required": ["code", "message"]}},
            "collateral": {"type": "array"},
            "attestation": {"type": "object"},
            "anchors": {"type": "object"},
            "supersedes": _NULLABLE_STR,
        },
    },
    "VerificationSummary": {
        "type": "object",
        "required": ["id", "status"],
        "properties": {"id": {"type": "string"}, "status": {"type": "string"}, "model": _NULLABLE_STR, "signer": _NULLABLE_STR},
    },
    "VerificationList": {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {"items": {"type": "array", "items": _ref("VerificationSummary")}, "next_cursor": _NULLABLE_STR},
    },
    "Key": {
        "type": "object",
        "required": ["id", "role", "name", "created_at", "revoked_at"],
        "properties": {"id": {"type": "string"}, "role": {"type": "string", "enum": ["submit", "read", "metrics", "admin"]},
                       "name": {"type": "string"}, "created_at": {"type": "number"}, "revoked_at": {"type": ["number", "null"]}},
    },
    "NewKey": {
        "allOf": [_ref("Key"), {"type": "object", "required": ["key"],
                                "properties": {"key": {"type": "string", "description": "the key itself: shown only here"}}}],
    },
    "KeyList": {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": _ref("Key")}}},
    "Job": {
        "type": "object",
        "required": ["id", "kind", "state", "total", "done", "changed", "errors", "rate", "eta_s", "by_change", "by_reason",
                     "clocks"],
        "properties": {
            "id": {"type": "string"}, "kind": {"type": "string", "enum": ["reverify"]},
            "state": {"type": "string", "enum": ["queued", "running", "interrupted", "cancelled", "done"]},
            "total": {"type": "integer", "description": "the selection's size, frozen when the job was created"},
            "done": {"type": "integer"}, "changed": {"type": "integer"}, "errors": {"type": "integer"},
            "rate": {"type": ["number", "null"], "description": "verdicts per second in the current run"},
            "eta_s": {"type": ["number", "null"]}, "at": _NULLABLE_INT, "collateral": {"type": "string"},
            "by_change": {"type": "object", "additionalProperties": {"type": "integer"},
                          "description": "e.g. {\"pass→fail\": 3}"},
            "by_reason": {"type": "object", "additionalProperties": {"type": "integer"}},
            "clocks": {"type": "object", "description": "verdict statuses summed at capture time and at the job's time",
                       "properties": {"captured": {"type": "object"}, "job": {"type": "object"}}},
        },
    },
    "JobList": {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": _ref("Job")}}},
    "JobRequest": {
        "type": "object", "additionalProperties": False,
        "properties": {
            "kind": {"type": "string", "enum": ["reverify"]},
            "filter": {"type": "object", "additionalProperties": False, "properties": {
                "status": {"type": "string", "enum": ["pass", "fail", "indeterminate"]}, "model": {"type": "string"},
                "signer": {"type": "string"}, "gateway": {"type": "string"}, "since": {"type": "integer"},
                "until": {"type": "integer"}, "ids": {"type": "array", "items": {"type": "string"}},
                **{name: {"type": "string"} for name in ("tcb_status", "advisory", "fmspc", "app_id", "compose_hash", "driver")}}},
            "policy": {"type": "string", "description": "policy TOML text, or the id of the service's policy"},
            "at": {"oneOf": [{"type": "string", "enum": ["captured", "now"]}, {"type": "integer"}]},
            "collateral": {"type": "string", "enum": ["recorded", "refresh", "early"]},
        },
    },
    "Health": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
    "Ready": {
        "type": "object",
        "required": ["status", "database", "dcap_workers"],
        "properties": {"status": {"type": "string"}, "database": {"type": "boolean"}, "dcap_workers": {"type": "boolean"}},
    },
}

_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_AUTH_ERRORS = {"401": _error("no API key, or an unknown or revoked one"), "403": _error("the key's role may not use this route"),
                "429": _error("the key's rate limit is exceeded (Retry-After says when to retry)")}


def _secured(op: dict[str, Any], roles: str) -> dict[str, Any]:
    """An operation that needs an API key of one of ``roles``."""
    return {**op, "description": f"roles: {roles}", "security": [{"bearer": []}],
            "responses": {**op["responses"], **_AUTH_ERRORS}}


def openapi_document() -> dict[str, Any]:
    list_params = [
        {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["pass", "fail", "indeterminate"]}},
        {"name": "model", "in": "query", "schema": {"type": "string"}},
        {"name": "signer", "in": "query", "schema": {"type": "string"}},
        {"name": "since", "in": "query", "schema": {"type": "integer"}, "description": "created at or after (unix seconds)"},
        {"name": "until", "in": "query", "schema": {"type": "integer"}, "description": "created before (unix seconds)"},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
        *({"name": name, "in": "query", "schema": {"type": "string"}, "description": f"verdicts whose claims include this {name}"}
          for name in ("tcb_status", "advisory", "fmspc", "app_id", "compose_hash", "driver")),
    ]
    readers = "submit (its own verdicts only), read, admin"
    return {
        "openapi": "3.1.0",
        "info": {"title": "Attestation verifier", "version": __version__,
                 "description": "Verifies that confidential-AI chat completions came from genuine TEE hardware. Every route "
                                "except /healthz, /readyz and /openapi.json needs `Authorization: Bearer <API key>`."},
        "paths": {
            "/v1/verifications": {
                "post": _secured({
                    "summary": "Verify one completion with a freshly minted nonce and record the verdict",
                    "parameters": [{"name": "X-Upstream-Authorization", "in": "header", "schema": {"type": "string"},
                                    "description": "the gateway API key; used for the upstream calls, never stored or logged"}],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("VerificationRequest")}}},
                    "responses": {"201": _json(_ref("Verdict"), "the recorded verdict (its status describes the evidence)"),
                                  "400": _error("bad input, naming the field"), "413": _error("body too large"),
                                  "503": _error("overloaded (in-flight evidence over the limit) or the ledger is busy: "
                                                "nothing was recorded; Retry-After says when to retry")},
                }, "submit, admin"),
                "get": _secured({
                    "summary": "List verdicts, newest first",
                    "parameters": list_params,
                    "responses": {"200": _json(_ref("VerificationList"), "a page of verdicts"), "400": _error("bad query parameter")},
                }, readers),
            },
            "/v1/verifications/{id}": {
                "get": _secured({"summary": "One verdict", "parameters": [_ID],
                                 "responses": {"200": _json(_ref("Verdict"), "the verdict"), "404": _error("unknown id")}}, readers),
            },
            "/v1/verifications/{id}/bundle": {
                "get": _secured({"summary": "The evidence bundle (zip) of a verdict, for `verifier verify-bundle`", "parameters": [_ID],
                                 "responses": {"200": {"description": "zip", "content": {"application/zip": {"schema": {
                                     "type": "string", "format": "binary"}}}}, "404": _error("unknown id")}}, readers),
            },
            "/v1/verifications/{id}/reverify": {
                "post": _secured({"summary": "Re-evaluate the stored bundle offline; the new verdict supersedes the old",
                                  "parameters": [_ID],
                                  "requestBody": {"required": False, "content": {"application/json": {"schema": {
                                      "type": "object", "additionalProperties": False,
                                      "properties": {"at": {"type": "integer", "description": "verification time (unix seconds)"}}}}}},
                                  "responses": {"201": _json(_ref("Verdict"), "the new verdict"), "404": _error("unknown id"),
                                                "400": _error("bad input"), "503": _error("the ledger is busy")}}, "admin"),
            },
            "/v1/keys": {
                "get": _secured({"summary": "The API keys (ids, roles, names; never the keys)",
                                 "responses": {"200": _json(_ref("KeyList"), "every key, revoked ones too")}}, "admin"),
                "post": _secured({"summary": "Create an API key; the answer is the only time the key is shown",
                                  "requestBody": {"required": True, "content": {"application/json": {"schema": {
                                      "type": "object", "required": ["role"], "additionalProperties": False,
                                      "properties": {"role": {"type": "string", "enum": ["submit", "read", "metrics", "admin"]},
                                                     "name": {"type": "string"}}}}}},
                                  "responses": {"201": _json(_ref("NewKey"), "the new key"), "400": _error("bad input")}}, "admin"),
            },
            "/v1/keys/{id}/revoke": {
                "post": _secured({"summary": "Revoke an API key (it stops working at once)", "parameters": [_ID],
                                  "responses": {"200": _json(_ref("Key"), "the revoked key"), "404": _error("unknown key")}},
                                 "admin"),
            },
            "/v1/jobs": {
                "post": _secured({"summary": "Start a batch re-verification job over recorded verdicts",
                                  "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("JobRequest")}}},
                                  "responses": {"202": _json(_ref("Job"), "the queued job (it runs in the background)"),
                                                "400": _error("bad input, naming the field")}}, "admin"),
                "get": _secured({"summary": "Jobs, newest first", "responses": {"200": _json(_ref("JobList"), "jobs")}},
                                "read, admin"),
            },
            "/v1/jobs/{id}": {
                "get": _secured({"summary": "One job: state, counts, rate, ETA, both clocks", "parameters": [_ID],
                                 "responses": {"200": _json(_ref("Job"), "the job"), "404": _error("unknown id")}},
                                "read, admin"),
            },
            "/v1/jobs/{id}/cancel": {
                "post": _secured({"summary": "Cancel a job (it stops after its current batch)", "parameters": [_ID],
                                  "responses": {"200": _json(_ref("Job"), "the job"), "404": _error("unknown id")}}, "admin"),
            },
            "/metrics": {"get": _secured({"summary": "Prometheus metrics (text exposition format)",
                                          "responses": {"200": {"description": "metrics", "content": {"text/plain": {
                                              "schema": {"type": "string"}}}}}}, "read, metrics, admin")},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": _json(_ref("Health"), "alive")}}},
            "/readyz": {"get": {"summary": "Readiness: database writable, dcap workers alive",
                                "responses": {"200": _json(_ref("Ready"), "ready"), "503": _json(_ref("Ready"), "not ready")}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1 document"}}}},
        },
        "components": {"schemas": SCHEMAS, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
