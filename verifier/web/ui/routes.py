"""The dashboard's route table (method, path, handler, roles): read by ``setup_ui``, the cookie middleware
(``access.ui_middleware``), the OpenAPI document's ``/ui/`` entries and the dashboard's auth-matrix test."""

from __future__ import annotations

from verifier.app.keys import Role
from verifier.web.routes import Route
from verifier.web.ui import access, jobs, pages

READERS = access.DASHBOARD_ROLES
ADMIN = frozenset({Role.ADMIN})
UI_ROUTES: tuple[Route, ...] = (
    Route("GET", "/ui/login", access.login_form, None),
    Route("POST", "/ui/login", access.login, None),
    Route("GET", "/ui/static/ui.css", pages.stylesheet, None),
    Route("POST", "/ui/logout", access.logout, READERS),
    Route("GET", "/ui/", pages.overview, READERS),
    Route("GET", "/ui/verifications", pages.verifications, READERS),
    Route("GET", "/ui/verifications.{fmt:(csv|json)}", pages.export, READERS),
    Route("GET", "/ui/verifications/{id}", pages.verdict, READERS),
    Route("GET", "/ui/verifications/{id}/bundle", pages.bundle, READERS),
    Route("POST", "/ui/verifications/{id}/reverify", pages.reverify, ADMIN),
    Route("GET", "/ui/signers", pages.signers, READERS),
    Route("GET", "/ui/signers/{address}", pages.signer, READERS),
    Route("GET", "/ui/jobs", jobs.job_list, READERS),
    Route("GET", "/ui/jobs.{fmt:(csv|json)}", jobs.job_export, READERS),
    Route("GET", "/ui/jobs/{id}", jobs.job_page, READERS),
    Route("POST", "/ui/jobs/{id}/cancel", jobs.cancel, ADMIN),
    Route("POST", "/ui/jobs/{id}/resume", jobs.resume, ADMIN),
)
