"""Building blocks of the OpenAPI document: references, JSON and error responses, secured operations."""

from __future__ import annotations

from typing import Any

NULLABLE_STR = {"type": ["string", "null"]}
NULLABLE_INT = {"type": ["integer", "null"]}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error(description: str) -> dict[str, Any]:
    return json_body(ref("Error"), description)


CORRUPT = error("ledger_corrupt: the stored verdict is not one the verifier wrote (edited outside it)")


ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
AUTH_ERRORS = {
    "401": error("no API key, or an unknown or revoked one"),
    "403": error("the key's role may not use this route"),
    "429": error("the key's rate limit is exceeded (Retry-After says when to retry)"),
}


def secured(op: dict[str, Any], roles: str) -> dict[str, Any]:
    """An operation that needs an API key of one of ``roles``."""
    return {
        **op,
        "description": f"roles: {roles}",
        "security": [{"bearer": []}],
        "responses": {**op["responses"], **AUTH_ERRORS},
    }


def text(description: str, media: str = "text/plain") -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": {"type": "string"}}}}
