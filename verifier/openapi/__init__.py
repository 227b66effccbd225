"""The OpenAPI 3.1 document of the HTTP API (kept true by tests/test_web.py: routes and response bodies)."""

from __future__ import annotations

from typing import Any

from verifier.openapi.paths import api_document
from verifier.openapi.ui import UI_PAGES, ui_operation

__all__ = ["UI_PAGES", "openapi_document"]


def openapi_document() -> dict[str, Any]:
    doc = api_document()
    doc["components"]["securitySchemes"]["cookie"] = {"type": "apiKey", "in": "cookie", "name": "verifier_ui"}
    for method, path, summary, roles in UI_PAGES:
        doc["paths"].setdefault(path, {})[method] = ui_operation(summary, roles)
    return doc
