"""The OpenAPI document's component schemas: the verdict, its checks and claims, jobs, keys, proofs, the JWKS."""

from __future__ import annotations

from typing import Any

from verifier.appraise.catalog import CHECK_IDS, REASONS
from verifier.openapi.parts import NULLABLE_INT, NULLABLE_STR, ref

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
                        k: NULLABLE_STR
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
                    "tls_binding": {
                        "type": "object",
                        "required": ["bound", "connection", "observed", "reason"],
                        "additionalProperties": False,
                        "description": "whether tls.binds_peer bound the TLS channel that served the completion to the "
                        "attested TD: the connection (completion, or the report/signature connection when the "
                        "completion was captured elsewhere), observed live or recorded (tls.json), else the reason",
                        "properties": {
                            "bound": {"type": "boolean"},
                            "connection": {
                                "type": ["string", "null"],
                                "enum": ["completion", "signature", "report", None],
                            },
                            "observed": {"type": ["string", "null"], "enum": ["live", "recorded", None]},
                            "reason": NULLABLE_STR,
                        },
                    },
                },
            },
            "nonce": {"type": "object", "properties": {"value": NULLABLE_STR, "origin": NULLABLE_STR}},
            "times": {
                "type": "object",
                "required": ["verified_at"],
                "properties": {
                    "verified_at": {"type": "integer"},
                    "captured_at": NULLABLE_INT,
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
            "checks": {"type": "array", "items": ref("Check")},
            "claims": {"type": "object"},
            "notes": {"type": "array", "items": {"type": "object", "required": ["code", "message"]}},
            "collateral": {"type": "array"},
            "attestation": {
                "type": "object",
                "additionalProperties": False,
                "required": ["format", "paths", "hops", "origin", "fetched_at", "reused_from", "age_s"],
                "properties": {
                    "format": NULLABLE_STR,
                    "paths": {"type": "array", "items": {"type": "string"}},
                    "hops": {"type": "array", "items": {"type": "string"}},
                    "origin": {"type": "string", "enum": ["fetched", "reused", "recorded"]},
                    "fetched_at": NULLABLE_INT,
                    "reused_from": NULLABLE_STR,
                    "age_s": NULLABLE_INT,
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
            "supersedes": NULLABLE_STR,
        },
    },
    "VerificationSummary": {
        "type": "object",
        "required": ["id", "status"],
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string"},
            "model": NULLABLE_STR,
            "signer": NULLABLE_STR,
        },
    },
    "VerificationList": {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {"items": {"type": "array", "items": ref("VerificationSummary")}, "next_cursor": NULLABLE_STR},
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
            ref("Key"),
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
        "properties": {"items": {"type": "array", "items": ref("Key")}},
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
            "at": NULLABLE_INT,
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
        "properties": {"items": {"type": "array", "items": ref("Job")}},
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

B64 = {"type": "string", "contentEncoding": "base64"}
SCHEMAS.update(
    {  # signed, portable results: the transparency log's proofs and the EAR keys
        "InclusionProof": {
            "type": "object",
            "required": ["verdict_id", "log_index", "tree_size", "leaf_hash", "inclusion_path", "checkpoint"],
            "properties": {
                "verdict_id": {"type": "string"},
                "log_index": {"type": "integer"},
                "tree_size": {"type": "integer"},
                "leaf_hash": B64,
                "inclusion_path": {"type": "array", "items": B64},
                "checkpoint": {"type": ["string", "null"], "description": "the signed checkpoint of tree_size"},
            },
        },
        "ConsistencyProof": {
            "type": "object",
            "required": ["from", "to", "old_root", "new_root", "consistency_path"],
            "properties": {
                "from": {"type": "integer"},
                "to": {"type": "integer"},
                "old_root": B64,
                "new_root": B64,
                "consistency_path": {"type": "array", "items": B64},
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
