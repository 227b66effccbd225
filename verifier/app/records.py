"""The record service: verify / re-verify / read / export, one code path for the CLI and the HTTP API.

``shaped`` is the ONE place that reads the verdict the engine returned: it turns an ``Evaluation`` into
the JSON that is stored and served (redacting the caller's secrets, applying ``retain_bodies``); ``_commit``
assigns the ledger id. Everything else handles that JSON. With verifier worker processes (``app.verify_pool``,
the proxy's ``--verify-workers``) a worker runs the pipeline and ``shaped``; the verdict is committed here, by
this process's single ledger writer.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from verifier.adapters.channel import Channel
from verifier.adapters.ledger import Ledger
from verifier.adapters.transport import REDACTED, redactor, secret_forms
from verifier.app.limits import Lease
from verifier.app.offload import bridge
from verifier.engine.ceiling import prior_checks
from verifier.engine.evaluate import Evaluation, evaluate
from verifier.engine.pipeline import Exchange, verify_exchange
from verifier.evidence.bundle import Bundle

if TYPE_CHECKING:
    from verifier.app.services import Services

JSON = dict[str, Any]


class UnknownVerdict(LookupError):
    """No such verdict (or none the caller may see)."""


class Records:
    def __init__(self, services: Services) -> None:
        self._svc = services

    # ------------------------------------------------------------------ writes

    async def verify(
        self,
        exchange: Exchange,
        *,
        api_key: str | None,
        submitted_by: str | None = None,
        lease: Lease | None = None,
        record: bool = True,
        channel: Channel | None = None,
    ) -> JSON:
        """The online pipeline for one completion, recorded (unless ``record`` is False: then its id is None).
        ``channel``: the proxy's connection that carried the completion (its signature and report go on it too).

        Raises ``Limited`` when the gateway's call budget is spent (before any call) or the in-flight bytes stay
        over the limit; ``LedgerBusy`` if it cannot commit."""
        svc = self._svc
        secrets = (api_key,) if api_key else ()
        ticket = svc.budget.ticket(exchange.gateway)
        try:
            if svc.verifiers is not None:  # a verifier worker process runs it (app.verify_pool); we commit
                # it fetches on its own connections: the completion's peer travels with the exchange (tls.json), and
                # the channel serves the next exchange at once
                observed = channel.peers.observations() if channel is not None else ()
                if channel is not None:
                    await channel.release()
                verdict, bundle = await svc.verifiers.verify(
                    replace(exchange, peers=exchange.peers + observed),
                    api_key=api_key,
                    now=int(svc.clock()),
                    calls=ticket if svc.budget.enabled else None,
                    reserve=lease.reserve if lease else None,
                )
                return await self._commit(verdict, bundle, secrets=secrets, submitted_by=submitted_by, save=record)
            gateway = svc.gateway(
                exchange.gateway,
                api_key=api_key,
                calls=ticket,
                reserve=lease.reserve if lease else None,
                channel=channel,
            )
            evaluation = await self._engine(
                verify_exchange, exchange, gateway=gateway, ctx=svc.context(), prior=svc.recorder
            )
        finally:
            ticket.release()
        return await self._recorded(evaluation, secrets=secrets, submitted_by=submitted_by, save=record)

    async def reverify(self, verdict_id: str, *, at: int | None = None, submitted_by: str | None = None) -> JSON:
        """Re-evaluate a recorded bundle offline (current policy) into a new verdict that supersedes it."""
        svc = self._svc
        bundle = await svc.recorder.bundle(verdict_id)
        old = await svc.recorder.get(verdict_id)
        if bundle is None or old is None:
            raise UnknownVerdict(verdict_id)
        now = at if at is not None else int(svc.clock())
        evaluation = await self._engine(
            evaluate, bundle, svc.offline_context(now=now), supersedes=verdict_id, prior=prior_checks(old)
        )
        return await self._recorded(evaluation, submitted_by=submitted_by)

    async def _engine(
        self, fn: Callable[..., Coroutine[Any, Any, Evaluation]], *args: Any, **kwargs: Any
    ) -> Evaluation:
        """Run the engine off the service loop (``app.offload``); its ports (and the Context's) stay on this loop."""
        offloader = self._svc.offloader
        if offloader is None:
            return await fn(*args, **kwargs)
        home = asyncio.get_running_loop()
        args = tuple(bridge(a, home) for a in args)
        return await offloader.run(fn, *args, **{k: bridge(v, home) for k, v in kwargs.items()})

    async def _recorded(
        self,
        evaluation: Evaluation,
        *,
        secrets: tuple[str, ...] = (),
        submitted_by: str | None = None,
        save: bool = True,
    ) -> JSON:
        verdict, bundle = shaped(evaluation, secrets=secrets, retain_bodies=self._svc.settings.retain_bodies)
        return await self._commit(verdict, bundle, secrets=secrets, submitted_by=submitted_by, save=save)

    async def _commit(
        self,
        verdict: JSON,
        bundle: Bundle,
        *,
        secrets: tuple[str, ...] = (),
        submitted_by: str | None = None,
        save: bool = True,
    ) -> JSON:
        """Record a ``shaped`` verdict through the ledger's one writer; its id is assigned here."""
        # the ledger refuses to store any remaining secret (defence in depth); a key short enough to occur by chance
        # in stored text (or in the redaction marker itself) is only redacted, not refused
        refuse = tuple(s for s in secrets if len(s.strip()) >= 8 and s.strip() not in REDACTED)
        verdict["id"] = None
        if not save:
            return verdict
        verdict["id"] = await self._svc.recorder.save(verdict, bundle, secrets=refuse, submitted_by=submitted_by)
        self._svc.metrics.verdict(verdict)
        return verdict

    # ------------------------------------------------------------------ reads

    async def get(self, verdict_id: str, *, submitted_by: str | None = None) -> JSON:
        verdict = await self._svc.recorder.get(verdict_id, submitted_by=submitted_by)
        if verdict is None:
            raise UnknownVerdict(verdict_id)
        return verdict

    async def export(self, verdict_id: str, *, submitted_by: str | None = None) -> tuple[Bundle, JSON]:
        """The verdict's evidence bundle (for ``verifier verify-bundle``) and the verdict itself."""
        return await self._svc.recorder.read(
            lambda ledger: export_bundle(ledger, verdict_id, submitted_by=submitted_by)
        )

    async def list(self, **filters: Any) -> tuple[list[JSON], str | None]:
        return await self._svc.recorder.list(**filters)


def shaped(evaluation: Evaluation, *, secrets: tuple[str, ...], retain_bodies: str) -> tuple[JSON, Bundle]:
    """The engine's verdict as the JSON that is stored and served, and the bundle to store with it: the caller's
    secrets redacted (with a note when evidence had to change), the bodies dropped under ``retain_bodies = hashes``.
    The only code that reads the engine's (typed, frozen) verdict; pure, so a verifier worker process runs it too."""
    verdict: JSON = evaluation.verdict.to_json()
    bundle = evaluation.bundle
    verdict, bundle, redacted = _redact(verdict, bundle, secrets)
    if redacted:
        verdict.setdefault("notes", []).append(
            {
                "code": "upstream_key_redacted",
                "message": "an upstream answer contained the caller's gateway API key; it was replaced by "
                f"{REDACTED} before storing (a bundle it was redacted from no longer re-verifies byte for byte)",
            }
        )
    if retain_bodies == "hashes":
        verdict, bundle = without_bodies(verdict, bundle)
    return verdict, bundle


def export_bundle(ledger: Ledger, verdict_id: str, *, submitted_by: str | None = None) -> tuple[Bundle, JSON]:
    """(bundle, verdict) of a recorded verdict, read from one ledger connection (the CLI's read-only one, or a
    reader thread's). ``UnknownVerdict`` if there is none (that ``submitted_by`` may see)."""
    verdict = ledger.get(verdict_id, submitted_by=submitted_by)
    if verdict is None:
        raise UnknownVerdict(verdict_id)
    return Bundle.from_files(ledger.evidence(verdict_id)), verdict


def reproduce_command(path: str, verdict: JSON) -> str:
    """The command that re-verifies an exported bundle at the verdict's own verification time."""
    at = (verdict.get("times") or {}).get("verified_at")
    return f"verifier verify-bundle {path} --at {at}" + (" --trust simulator" if verdict.get("simulator") else "")


# verdict fields that are names the verifier chose (ids, statuses, codes), never text quoted from upstream
_STRUCTURAL = frozenset(
    {
        "id",
        "status",
        "severity",
        "reason",
        "code",
        "trust_profile",
        "origin",
        "format",
        "signing_algo",
        "supersedes",
        "sha256",
        "verified_at",
        "captured_at",
    }
)


def _redact(verdict: JSON, bundle: Bundle, secrets: tuple[str, ...]) -> tuple[JSON, Bundle, bool]:
    """Replace every form of every secret (whatever its length) in the verdict's text and the evidence bytes."""
    forms = secret_forms(s for s in secrets if s)
    if not forms:
        return verdict, bundle, False
    redact = redactor(secrets)
    found = False

    def walk(value: Any) -> Any:
        nonlocal found
        if isinstance(value, str):
            out = redact(value)
            found |= out != value
            return out
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: v if k in _STRUCTURAL else walk(v) for k, v in value.items()}
        return value

    needles = sorted((f.encode() for f in forms), key=len, reverse=True)

    def scrub(data: bytes | None) -> bytes | None:
        nonlocal found
        if data is None:
            return None
        out = data
        for _ in range(8):  # until stable: a replacement can re-form a secret with what follows it
            before = out
            for needle in needles:
                out = out.replace(needle, REDACTED.encode())
            if out == before:
                break
        else:
            out = b"[redacted evidence]"
        found |= out != data
        return out

    verdict = walk(verdict)
    bundle = replace(
        bundle,
        request=scrub(bundle.request),
        response=scrub(bundle.response),
        signature=scrub(bundle.signature),
        report=scrub(bundle.report),
        headers=scrub(bundle.headers),
        tls=scrub(bundle.tls),
        collateral={n: scrub(b) or b"" for n, b in bundle.collateral.items()},
        nras={n: scrub(b) or b"" for n, b in bundle.nras.items()},
    )
    return verdict, bundle, found


def without_bodies(verdict: JSON, bundle: Bundle) -> tuple[JSON, Bundle]:
    """``retain_bodies = hashes``: the bundle keeps the sha256 of the request/response bytes, not the bytes."""
    digests = {
        part: hashlib.sha256(body).hexdigest() if body is not None else None
        for part, body in (("request", bundle.request), ("response", bundle.response))
    }
    bundle = replace(
        bundle,
        request=None,
        response=None,
        request_sha256=digests["request"] or bundle.request_sha256,
        response_sha256=digests["response"] or bundle.response_sha256,
    )
    notes = verdict.setdefault("notes", [])
    if any(n.get("code") == "bodies_not_retained" for n in notes):
        return verdict, bundle
    notes.append(
        {
            "code": "bodies_not_retained",
            "message": "the request and response bytes were not retained (retain_bodies = hashes): the bundle keeps "
            "their sha256, and re-verification checks the signed hashes against those",
        }
    )
    return verdict, bundle
