"""The HTTP routes: one table (method, path, handler, roles), read by the app, the auth middleware, the OpenAPI
test and the auth-matrix test. The HTTP status describes the request; the verdict describes the evidence (a
``fail`` verdict is a 201)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from verifier.adapters.ledger.claims import CLAIM_NAMES
from verifier.app.job_spec import JobSpecError, parse_spec
from verifier.app.jobs import UnknownJob
from verifier.app.keys import KeyStore, Role
from verifier.app.metrics import CONTENT_TYPE
from verifier.core.errors import ConfigError
from verifier.core.model import Status
from verifier.engine.pipeline import Exchange, InputError
from verifier.evidence.bundle import MAX_UNIX_SECONDS
from verifier.openapi import openapi_document
from verifier.web import inputs, signed
from verifier.web.access_log import VERDICT
from verifier.web.auth import API_KEY, owner_scope
from verifier.web.errors import SERVICES, SETTINGS, HTTPProblem, bad_request

STATUSES = frozenset(s.value for s in Status) - {"skipped"}
_POST_FIELDS = frozenset(
    {"request", "request_b64", "response", "response_b64", "model", "chat_id", "gateway", "signing_algo"}
)


async def post_verification(request: web.Request) -> web.Response:
    svc, settings = request.app[SERVICES], request.app[SETTINGS]
    api_key = inputs.upstream_key(request)
    if (request.content_length or 0) > settings.max_body_bytes:  # refused before it can hold any in-flight budget
        raise web.HTTPRequestEntityTooLarge(max_size=settings.max_body_bytes, actual_size=request.content_length or 0)
    async with svc.admission.lease() as lease:
        await lease.reserve(2 * (request.content_length or settings.max_body_bytes))  # the raw body + its decoded bytes
        body = await inputs.json_object(request, allowed=_POST_FIELDS)
        req_bytes, resp_bytes = inputs.exact_bytes(body, "request"), inputs.exact_bytes(body, "response")
        if req_bytes is None:
            raise bad_request("request", "request: required (or request_b64)")
        if resp_bytes is None:
            raise bad_request("response", "response: required (or response_b64)")
        model = inputs.name_field(body.get("model"), "model", required=True)
        chat_id = inputs.chat_id_field(body.get("chat_id"))
        algo = body.get("signing_algo", "ecdsa")
        if not isinstance(algo, str) or algo not in ("ecdsa", "ed25519"):
            raise bad_request("signing_algo", f"signing_algo: got {str(algo)[:40]!r}, expected 'ecdsa' or 'ed25519'")
        try:
            gateway_url = settings.gateway_allowed(body.get("gateway", settings.default_gateway))
        except ConfigError as exc:
            raise inputs.gateway_error(exc) from None
        assert model is not None
        exchange = Exchange(
            request=req_bytes, response=resp_bytes, model=model, gateway=gateway_url, chat_id=chat_id, signing_algo=algo
        )
        del body  # the exchange holds the bytes; the decoded JSON (a second copy of them) can go now
        try:
            verdict = await svc.records.verify(exchange, api_key=api_key, submitted_by=request[API_KEY].id, lease=lease)
        except InputError as exc:
            raise bad_request("chat_id", exc.message) from None
    request[VERDICT] = verdict
    return web.json_response(verdict, status=201, headers={"Location": f"/v1/verifications/{verdict['id']}"})


async def get_verification(request: web.Request) -> web.Response:
    verdict = await request.app[SERVICES].records.get(inputs.verdict_id(request), submitted_by=owner_scope(request))
    return web.json_response(verdict)


async def list_verifications(request: web.Request) -> web.Response:
    q = request.query
    unknown = set(q) - {"status", "model", "signer", "since", "until", "limit", "cursor", *CLAIM_NAMES}
    if unknown:
        name = inputs.printable(sorted(unknown)[0])[:64]
        raise bad_request(name, f"{name}: unknown query parameter")
    status = q.get("status")
    if status is not None and status not in STATUSES:
        raise bad_request(
            "status", f"status: got {inputs.printable(status)[:40]!r}, expected one of {sorted(STATUSES)}"
        )
    filters: dict[str, Any] = {
        "status": status,
        "model": inputs.name_field(q.get("model"), "model", required=False),
        "signer": inputs.name_field(q.get("signer"), "signer", required=False),
        "since": inputs.int_param(request, "since", 0, MAX_UNIX_SECONDS),
        "until": inputs.int_param(request, "until", 0, MAX_UNIX_SECONDS),
        "limit": inputs.int_param(request, "limit", 1, 500) or 50,
        "cursor": inputs.name_field(q.get("cursor"), "cursor", required=False),
        "submitted_by": owner_scope(request),
        "claims": {n: inputs.name_field(q.get(n), n, required=True) for n in CLAIM_NAMES if n in q} or None,  # indexed
    }
    try:
        items, cursor = await request.app[SERVICES].records.list(**filters)
    except ValueError as exc:
        raise bad_request("cursor", f"cursor: {exc}") from None
    return web.json_response({"items": items, "next_cursor": cursor})


async def get_bundle(request: web.Request) -> web.Response:
    verdict_id = inputs.verdict_id(request)
    bundle, _ = await request.app[SERVICES].records.export(verdict_id, submitted_by=owner_scope(request))
    return web.Response(
        body=bundle.to_zip(),
        content_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{verdict_id}.zip"'},
    )


async def reverify(request: web.Request) -> web.Response:
    """Re-evaluate a stored bundle (offline, current policy) into a new verdict that supersedes the old one."""
    verdict_id = inputs.verdict_id(request)
    body = await inputs.json_object(request, allowed=frozenset({"at"}), optional=True)
    at = inputs.unix_seconds(body.get("at"), "at")
    verdict = await request.app[SERVICES].records.reverify(verdict_id, at=at, submitted_by=request[API_KEY].id)
    request[VERDICT] = verdict
    return web.json_response(verdict, status=201, headers={"Location": f"/v1/verifications/{verdict['id']}"})


async def list_keys(request: web.Request) -> web.Response:
    keys = await request.app[SERVICES].recorder.read(lambda ledger: KeyStore(ledger).list())
    return web.json_response({"items": [k.to_json() for k in keys]})


async def create_key(request: web.Request) -> web.Response:
    body = await inputs.json_object(request, allowed=frozenset({"role", "name"}))
    role = body.get("role")
    if not isinstance(role, str) or role not in {r.value for r in Role}:
        raise bad_request("role", f"role: got {str(role)[:40]!r}, expected one of {', '.join(r.value for r in Role)}")
    name = inputs.name_field(body.get("name", "unnamed"), "name", required=True) or ""
    try:
        key, secret = await request.app[SERVICES].recorder.write(lambda ledger: KeyStore(ledger).create(role, name))
    except ConfigError as exc:
        raise bad_request("name", exc.message) from None
    return web.json_response({**key.to_json(), "key": secret}, status=201)


async def revoke_key(request: web.Request) -> web.Response:
    key_id = request.match_info["id"]
    if len(key_id) != 16 or not all(c in "0123456789abcdef" for c in key_id):
        raise HTTPProblem(404, "not_found", "no such key", "id")
    try:
        key = await request.app[SERVICES].recorder.write(lambda ledger: KeyStore(ledger).revoke(key_id))
    except KeyError:
        raise HTTPProblem(404, "not_found", f"no key {key_id}", "id") from None
    return web.json_response(key.to_json())


def _job_id(request: web.Request) -> str:
    job_id = request.match_info["id"]
    if not inputs.JOB_ID.fullmatch(job_id):
        raise HTTPProblem(404, "not_found", "no such job", "id")
    return job_id


async def create_job(request: web.Request) -> web.Response:
    """A batch re-verification job (``app.jobs``): queued with its selection frozen, then run in the background."""
    body = await inputs.json_object(request, allowed=frozenset({"kind", "filter", "policy", "at", "collateral"}))
    svc = request.app[SERVICES]
    try:
        job = await svc.jobs.create(parse_spec(body), created_by=request[API_KEY].id)
    except JobSpecError as exc:
        raise bad_request(exc.field, exc.message) from None
    svc.jobs.start(job["id"])
    return web.json_response(job, status=202, headers={"Location": f"/v1/jobs/{job['id']}"})


async def list_jobs(request: web.Request) -> web.Response:
    return web.json_response({"items": await request.app[SERVICES].jobs.list()})


async def get_job(request: web.Request) -> web.Response:
    try:
        return web.json_response(await request.app[SERVICES].jobs.get(_job_id(request)))
    except UnknownJob:
        raise HTTPProblem(404, "not_found", "no such job", "id") from None


async def cancel_job(request: web.Request) -> web.Response:
    try:
        return web.json_response(await request.app[SERVICES].jobs.cancel(_job_id(request)))
    except UnknownJob:
        raise HTTPProblem(404, "not_found", "no such job", "id") from None


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[SERVICES].metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    db_ok = await request.app[SERVICES].recorder.healthy()
    workers_ok = request.app[SERVICES].pool.alive()
    body = {"status": "ready" if db_ok and workers_ok else "not_ready", "database": db_ok, "dcap_workers": workers_ok}
    return web.json_response(body, status=200 if db_ok and workers_ok else 503)


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    roles: frozenset[Role] | None  # None: public


_ANY_READER = frozenset({Role.SUBMIT, Role.READ, Role.ADMIN})  # a submit key reads only what it submitted
ROUTES: tuple[Route, ...] = (
    Route("POST", "/v1/verifications", post_verification, frozenset({Role.SUBMIT, Role.ADMIN})),
    Route("GET", "/v1/verifications", list_verifications, _ANY_READER),
    Route("GET", "/v1/verifications/{id}", get_verification, _ANY_READER),
    Route("GET", "/v1/verifications/{id}/bundle", get_bundle, _ANY_READER),
    Route("POST", "/v1/verifications/{id}/reverify", reverify, frozenset({Role.ADMIN})),
    Route("GET", "/v1/keys", list_keys, frozenset({Role.ADMIN})),
    Route("POST", "/v1/keys", create_key, frozenset({Role.ADMIN})),
    Route("POST", "/v1/keys/{id}/revoke", revoke_key, frozenset({Role.ADMIN})),
    Route("POST", "/v1/jobs", create_job, frozenset({Role.ADMIN})),
    Route("GET", "/v1/jobs", list_jobs, frozenset({Role.READ, Role.ADMIN})),
    Route("GET", "/v1/jobs/{id}", get_job, frozenset({Role.READ, Role.ADMIN})),
    Route("POST", "/v1/jobs/{id}/cancel", cancel_job, frozenset({Role.ADMIN})),
    Route("GET", "/metrics", metrics, frozenset({Role.READ, Role.METRICS, Role.ADMIN})),
    Route("GET", "/healthz", healthz, None),
    Route("GET", "/readyz", readyz, None),
    Route("GET", "/openapi.json", openapi, None),
    # signed, portable results: EAR per verdict, its JWKS, the transparency log of verdicts
    Route("GET", "/v1/verifications/{id}/ear", signed.get_ear, _ANY_READER),
    Route("GET", "/.well-known/jwks.json", signed.get_jwks, None),
    Route("GET", "/v1/log/key", signed.get_log_key, None),
    Route("GET", "/v1/log/checkpoint", signed.get_checkpoint, frozenset({Role.READ, Role.ADMIN})),
    Route("GET", "/v1/log/proof/{id}", signed.get_proof, frozenset({Role.READ, Role.ADMIN})),
    Route("GET", "/v1/log/consistency", signed.get_consistency, frozenset({Role.READ, Role.ADMIN})),
)
