"""Handlers of the signed, portable results: a verdict's EAR, the JWKS, and the transparency log (checkpoint, log
key, inclusion and consistency proofs). Routed in ``verifier.web.routes``."""

from __future__ import annotations

from aiohttp import web

from verifier.adapters.ledger import Ledger
from verifier.adapters.ledger.tlog import consistency, inclusion, index_of, sign_head
from verifier.app.ear import ear_claims, jwks, sign_ear
from verifier.app.records import UnknownVerdict
from verifier.core.checkpoint import NoteSigner
from verifier.web import inputs
from verifier.web.auth import owner_scope
from verifier.web.errors import SERVICES, HTTPProblem, bad_request

MAX_SIZE = 2**53
JWT_TYPE = "application/jwt"
NOTE_TYPE = "text/plain"


async def get_ear(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    verdict_id = inputs.verdict_id(request)
    verdict = await svc.records.get(verdict_id, submitted_by=owner_scope(request))
    if not svc.ear_keys:
        raise HTTPProblem(404, "not_found", "this verifier has no EAR key")
    index = await svc.recorder.read(lambda ledger: index_of(ledger.db, verdict_id))
    token = sign_ear(ear_claims(verdict, log_index=index, iat=int(svc.clock())), svc.ear_keys[-1])
    return web.Response(text=token, content_type=JWT_TYPE)


async def get_jwks(request: web.Request) -> web.Response:
    return web.json_response(jwks(request.app[SERVICES].ear_keys))


def _signer(request: web.Request) -> NoteSigner:
    signer = request.app[SERVICES].log_signer
    if signer is None:
        raise HTTPProblem(404, "not_found", "this verifier has no log key")
    return signer


async def get_log_key(request: web.Request) -> web.Response:
    return web.Response(text=_signer(request).verifier.vkey() + "\n", content_type=NOTE_TYPE)


async def get_checkpoint(request: web.Request) -> web.Response:
    """The signed checkpoint of the current tree head (signed and stored once per tree size)."""
    svc, signer = request.app[SERVICES], _signer(request)

    def sign(ledger: Ledger) -> str:
        with ledger.transaction():
            return sign_head(ledger.db, signer, ledger.now())

    return web.Response(text=await svc.recorder.write(sign), content_type=NOTE_TYPE)


async def get_proof(request: web.Request) -> web.Response:
    verdict_id = inputs.verdict_id(request)
    unknown = set(request.query) - {"size"}
    if unknown:
        raise bad_request(inputs.printable(sorted(unknown)[0])[:64], "unknown query parameter")
    size = inputs.int_param(request, "size", 1, MAX_SIZE)
    try:
        proof = await request.app[SERVICES].recorder.read(lambda ledger: inclusion(ledger.db, verdict_id, size))
    except KeyError:
        raise UnknownVerdict(verdict_id) from None
    except ValueError as exc:
        raise bad_request("size", str(exc)) from None
    return web.json_response(proof.to_json())


async def get_consistency(request: web.Request) -> web.Response:
    unknown = set(request.query) - {"from", "to"}
    if unknown:
        raise bad_request(inputs.printable(sorted(unknown)[0])[:64], "unknown query parameter")
    old, new = inputs.int_param(request, "from", 0, MAX_SIZE), inputs.int_param(request, "to", 0, MAX_SIZE)
    if old is None or new is None:
        raise bad_request("from" if old is None else "to", "from and to (tree sizes) are required")
    try:
        body = await request.app[SERVICES].recorder.read(lambda ledger: consistency(ledger.db, old, new))
    except ValueError as exc:
        raise bad_request("to", str(exc)) from None
    return web.json_response(body)
