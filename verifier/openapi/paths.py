"""The OpenAPI document's paths: the verification API, the signed results and the transparency log."""

from __future__ import annotations

from typing import Any

from verifier import __version__
from verifier.openapi.parts import CORRUPT, ID, error, json_body, ref, secured, text
from verifier.openapi.schemas import SCHEMAS


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
            "get": secured(
                {
                    "summary": "The verdict as a signed EAT Attestation Result (draft-ietf-rats-ear-04, EdDSA JWT)",
                    "parameters": [ID],
                    "responses": {
                        "200": text("the EAR (compact JWT)", "application/jwt"),
                        "404": error("unknown id"),
                        "409": CORRUPT,
                    },
                },
                readers,
            ),
        },
        "/.well-known/jwks.json": {
            "get": {
                "summary": "The EAR signing keys (current first, retired ones kept)",
                "responses": {"200": json_body(ref("Jwks"), "the JWKS")},
            }
        },
        "/v1/log/key": {
            "get": {
                "summary": "The transparency log's verifier key (C2SP signed-note vkey)",
                "responses": {"200": text("name+keyid+key"), "404": error("no log key")},
            }
        },
        "/v1/log/checkpoint": {
            "get": secured(
                {
                    "summary": "The signed checkpoint (C2SP tlog-checkpoint) of the verdict log's current head",
                    "responses": {"200": text("the signed note"), "503": error("the ledger is busy")},
                },
                "read, admin",
            ),
        },
        "/v1/log/proof/{id}": {
            "get": secured(
                {
                    "summary": "RFC 9162 inclusion proof of a verdict in the tree of `size` leaves",
                    "parameters": [ID, size],
                    "responses": {
                        "200": json_body(ref("InclusionProof"), "the proof"),
                        "404": error("unknown id"),
                        "400": error("a size that does not hold the verdict"),
                    },
                },
                "read, admin",
            ),
        },
        "/v1/log/consistency": {
            "get": secured(
                {
                    "summary": "RFC 9162 consistency proof between two tree sizes",
                    "parameters": sizes,
                    "responses": {
                        "200": json_body(ref("ConsistencyProof"), "the proof"),
                        "400": error("sizes outside 0 <= from <= to <= the tree size"),
                    },
                },
                "read, admin",
            ),
        },
    }


def api_document() -> dict[str, Any]:
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
                "post": secured(
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
                            "content": {"application/json": {"schema": ref("VerificationRequest")}},
                        },
                        "responses": {
                            "201": json_body(
                                ref("Verdict"), "the recorded verdict (its status describes the evidence)"
                            ),
                            "400": error("bad input, naming the field"),
                            "413": error("body too large"),
                            "503": error(
                                "overloaded (in-flight evidence over the limit) or the ledger is busy: "
                                "nothing was recorded; Retry-After says when to retry"
                            ),
                        },
                    },
                    "submit, admin",
                ),
                "get": secured(
                    {
                        "summary": "List verdicts, newest first",
                        "parameters": list_params,
                        "responses": {
                            "200": json_body(ref("VerificationList"), "a page of verdicts"),
                            "400": error("bad query parameter"),
                        },
                    },
                    readers,
                ),
            },
            "/v1/verifications/{id}": {
                "get": secured(
                    {
                        "summary": "One verdict",
                        "parameters": [ID],
                        "responses": {
                            "200": json_body(ref("Verdict"), "the verdict"),
                            "404": error("unknown id"),
                            "409": CORRUPT,
                        },
                    },
                    readers,
                ),
            },
            "/v1/verifications/{id}/bundle": {
                "get": secured(
                    {
                        "summary": "The evidence bundle (zip) of a verdict, for `verifier verify-bundle`",
                        "parameters": [ID],
                        "responses": {
                            "200": {
                                "description": "zip",
                                "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
                            },
                            "404": error("unknown id"),
                            "409": CORRUPT,
                        },
                    },
                    readers,
                ),
            },
            "/v1/verifications/{id}/reverify": {
                "post": secured(
                    {
                        "summary": "Re-evaluate the stored bundle offline; the new verdict supersedes the old",
                        "parameters": [ID],
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
                            "201": json_body(ref("Verdict"), "the new verdict"),
                            "404": error("unknown id"),
                            "409": CORRUPT,
                            "400": error("bad input"),
                            "503": error("the ledger is busy"),
                        },
                    },
                    "admin",
                ),
            },
            "/v1/keys": {
                "get": secured(
                    {
                        "summary": "The API keys (ids, roles, names; never the keys)",
                        "responses": {"200": json_body(ref("KeyList"), "every key, revoked ones too")},
                    },
                    "admin",
                ),
                "post": secured(
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
                        "responses": {"201": json_body(ref("NewKey"), "the new key"), "400": error("bad input")},
                    },
                    "admin",
                ),
            },
            "/v1/keys/{id}/revoke": {
                "post": secured(
                    {
                        "summary": "Revoke an API key (it stops working at once)",
                        "parameters": [ID],
                        "responses": {"200": json_body(ref("Key"), "the revoked key"), "404": error("unknown key")},
                    },
                    "admin",
                ),
            },
            "/v1/jobs": {
                "post": secured(
                    {
                        "summary": "Start a batch re-verification job over recorded verdicts",
                        "requestBody": {
                            "required": True,
                            "content": {"application/json": {"schema": ref("JobRequest")}},
                        },
                        "responses": {
                            "202": json_body(ref("Job"), "the queued job (it runs in the background)"),
                            "400": error("bad input, naming the field"),
                        },
                    },
                    "admin",
                ),
                "get": secured(
                    {"summary": "Jobs, newest first", "responses": {"200": json_body(ref("JobList"), "jobs")}},
                    "read, admin",
                ),
            },
            "/v1/jobs/{id}": {
                "get": secured(
                    {
                        "summary": "One job: state, counts, rate, ETA, both clocks",
                        "parameters": [ID],
                        "responses": {"200": json_body(ref("Job"), "the job"), "404": error("unknown id")},
                    },
                    "read, admin",
                ),
            },
            "/v1/jobs/{id}/cancel": {
                "post": secured(
                    {
                        "summary": "Cancel a job (it stops after its current batch)",
                        "parameters": [ID],
                        "responses": {"200": json_body(ref("Job"), "the job"), "404": error("unknown id")},
                    },
                    "admin",
                ),
            },
            "/metrics": {
                "get": secured(
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
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": json_body(ref("Health"), "alive")}}},
            "/readyz": {
                "get": {
                    "summary": "Readiness: database writable, dcap workers alive",
                    "responses": {"200": json_body(ref("Ready"), "ready"), "503": json_body(ref("Ready"), "not ready")},
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
