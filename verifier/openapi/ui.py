"""The dashboard's pages in the OpenAPI document (HTML, session cookie)."""

from __future__ import annotations

from typing import Any

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


def ui_operation(summary: str, roles: str | None) -> dict[str, Any]:
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
