"""Review 4: adversarial tests of the TLS channel binding (h-tls) and the proxy's verifier workers (h-proxy).

Each test asserts the SECURE outcome. A finding that still holds today is ``xfail(strict=True)`` with its reason;
the others are regressions (attacks refused today, or fixed on this branch).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import ssl
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from test_proxy import bundle_of, start, verdict_by_id
from test_tls_binding import REQUIRE, check, notes, proxied, recorded, verify_bundle
from web_env import API_KEY, clock, make_keys

from verifier.adapters.tls_trust import connector_ssl, upstream_ssl_context
from verifier.adapters.transport import secret_forms
from verifier.app.keys import Role
from verifier.appraise.policy import default_policy
from verifier.core.errors import EvidenceError
from verifier.core.model import CheckResult, Status
from verifier.demo import simulator_settings
from verifier.engine.ceiling import no_upgrade
from verifier.evidence.bundle import Bundle
from verifier.evidence.tls_observation import PeerObservation, TlsObservations, parse_tls_json
from verifier.simulator.tls import SimulatorTls
from verifier.web.proxy import ID_HEADER, create_proxy_app

MODEL = "sim/echo-1"
ROOT = Path(__file__).resolve().parent.parent


def _write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _edit_report(bundle: Bundle, change: Any) -> Bundle:
    """report.json with ``change`` applied to every attestation entry (phala_flat: the top level and its copies)."""
    doc = json.loads(bundle.report or b"")
    change(doc)
    for entry in doc.get("all_attestations", []):
        change(entry)
    return replace(bundle, report=json.dumps(doc).encode())


def _with_calls(bundle: Bundle, *calls: PeerObservation) -> Bundle:
    return replace(bundle, tls=TlsObservations(calls=calls).to_json_bytes())


# ------------------------------------------------------------------- the ceiling: a prior without a tls.binds_peer row


def _row(status: Status, reason: str | None = None, check_id: str = "tls.binds_peer") -> CheckResult:
    return CheckResult(check_id, status, default_policy().severity(check_id), reason, "m")


def test_a_prior_without_a_binding_row_or_any_row_is_still_a_ceiling() -> None:
    """FIXED (ceiling.py): a prior verdict with no tls.binds_peer row (recorded before the check existed) or no rows
    at all let the re-appraisal be the first to pass an observation from unauthenticated tls.json."""
    now = (_row(Status.PASS), _row(Status.PASS, check_id="tdx.quote"))
    for prior in ({"tdx.quote": _row(Status.PASS, check_id="tdx.quote")}, {}):
        held = no_upgrade(now, prior, prior_id="v_old")
        assert (held[0].status, held[0].reason) == (Status.INDETERMINATE, "observation_not_upgraded")
        assert held[0].details["prior"] is None and "no result for it" in held[0].message
        assert held[1] == now[1]
    assert no_upgrade(now, None, prior_id=None) == now  # no prior at all (verify-bundle alone): nothing to hold


def test_verify_bundle_prior_without_a_binding_row_does_not_pass_a_forged_tls_json(tmp_path: Path) -> None:
    """The attack end to end: a verdict recorded without a tls.binds_peer row, its bundle given a forged tls.json whose
    every peer is the attested key, re-appraised with --prior under a policy that requires the binding."""
    verdict, bundle = recorded(tmp_path, faults=("tls_wrong_fingerprint",))
    attested = check(verdict)["details"]["expected"]
    forged = _with_calls(
        bundle,
        *(replace(c, peer_spki_sha256=attested) for c in parse_tls_json(bundle.tls or b"").calls),
    )
    old = dict(verdict, checks=[c for c in verdict["checks"] if c["id"] != "tls.binds_peer"])
    prior = _write(tmp_path, "old-verdict.json", json.dumps(old).encode())
    policy = _write(tmp_path, "require.toml", REQUIRE)
    alone = verify_bundle(tmp_path, forged, verdict, "--policy", policy)
    assert check(alone)["status"] == "pass"  # the forgery recomputes to a pass (marked recorded) without a prior
    held = verify_bundle(tmp_path, forged, verdict, "--policy", policy, "--prior", prior)
    assert (check(held)["status"], check(held)["reason"]) == ("indeterminate", "observation_not_upgraded")
    assert held["status"] == "indeterminate" and held["subject"]["tls_binding"]["bound"] is False


# ------------------------------------------------------------------- headers.json is observer data too (model.served)


def test_an_edited_headers_json_cannot_upgrade_a_recorded_model_fallback(tmp_path: Path) -> None:
    at, bundle = recorded(tmp_path)
    assert bundle.headers is not None
    served = json.loads(bundle.headers)
    fallback = replace(bundle, headers=json.dumps({**served, "x-model-used": "sim/fallback-1"}).encode())
    recorded_fail = verify_bundle(tmp_path, fallback, at)  # what the proxy recorded: served by a fallback model
    assert (check(recorded_fail, "model.served")["reason"], recorded_fail["status"]) == ("model_fallback", "fail")
    prior = _write(tmp_path, "verdict.json", json.dumps(recorded_fail).encode())
    edited = replace(fallback, headers=json.dumps({k: v for k, v in served.items() if k != "x-model-used"}).encode())
    again = verify_bundle(tmp_path, edited, at, "--prior", prior)
    assert check(again, "model.served")["status"] == "fail"
    assert again["status"] != "pass"


# ------------------------------------------------------------------- report_data and the report's JSON fingerprint


def test_a_report_naming_another_tls_fingerprint_than_its_quote_binds_fails(tmp_path: Path) -> None:
    """TLS-layout quote; the report's tls_cert_fingerprint edited to another key (e.g. a MITM's)."""
    verdict, bundle = recorded(tmp_path, policy=REQUIRE)
    assert verdict["status"] == "pass"
    lie = hashlib.sha256(b"the middlebox's key").hexdigest()
    edited = _edit_report(bundle, lambda d: d.update(tls_cert_fingerprint=lie))
    forged = _with_calls(edited, *(replace(c, peer_spki_sha256=lie) for c in parse_tls_json(bundle.tls or b"").calls))
    offline = verify_bundle(tmp_path, forged, verdict, "--policy", _write(tmp_path, "p.toml", REQUIRE))
    assert check(offline, "tdx.binds_signer")["reason"] == "report_data_signer_mismatch"
    assert check(offline)["status"] != "pass" and offline["status"] == "fail"
    assert offline["subject"]["tls_binding"]["bound"] is False


def test_a_default_layout_quote_with_a_json_fingerprint_of_the_live_peer_binds_nothing(tmp_path: Path) -> None:
    """The quote binds the padded signer (no TLS key); the report's JSON claims the live peer's fingerprint."""
    never_ask = b'[policy]\nid = "no-tls-layout"\n[tls]\nrequest_fingerprint = []\n'
    verdict, bundle = recorded(tmp_path, policy=never_ask)
    assert check(verdict, "tdx.binds_signer")["message"].endswith("(padded_address)")
    peer = parse_tls_json(bundle.tls or b"").get("completion")
    assert peer is not None and peer.peer_spki_sha256 is not None
    claimed = _edit_report(bundle, lambda d: d.update(tls_cert_fingerprint=peer.peer_spki_sha256))
    offline = verify_bundle(tmp_path, claimed, verdict)
    assert (check(offline)["status"], check(offline)["reason"]) == ("skipped", "not_tls_layout")
    assert "does not bind" in check(offline)["message"] and offline["subject"]["tls_binding"]["bound"] is False
    assert "tls_channel_bound" not in notes(offline)
    required = verify_bundle(tmp_path, claimed, verdict, "--policy", _write(tmp_path, "p.toml", REQUIRE))
    assert required["status"] == "indeterminate"


async def test_a_near_two_layer_response_signed_by_the_model_key_never_binds_the_channel(tmp_path: Path) -> None:
    """The model attestation names its node's TLS key; only the gateway terminates our TLS, and it did not sign."""
    async with proxied(tmp_path, report_format="near_two_layer", policy=REQUIRE) as env:
        verdict = await env.complete()
    assert (check(verdict)["status"], check(verdict)["reason"]) == ("indeterminate", "tls_gateway_not_verified")
    assert verdict["status"] == "indeterminate" and verdict["subject"]["tls_binding"]["bound"] is False


def test_a_reused_attestation_binds_no_other_connection(tmp_path: Path) -> None:
    """A reused attestation (no report call in this exchange) whose quote binds a key this exchange's connections did
    not present: never a pass, whatever the earlier exchange observed."""
    verdict, bundle = recorded(tmp_path)
    other = hashlib.sha256(b"another replica").hexdigest()
    reused = replace(bundle, meta=replace(bundle.meta, reused_from="v_earlier"))
    calls = [
        PeerObservation(role, "c1", "https", other, "127.0.0.1:443", 50000) for role in ("completion", "signature")
    ]
    offline = verify_bundle(tmp_path, _with_calls(reused, *calls), verdict)
    assert check(offline)["status"] != "pass" and offline["subject"]["tls_binding"]["bound"] is False


# ------------------------------------------------------------------- tls.json parser: odd but well-formed input


@pytest.mark.parametrize(
    "port",
    ["9" * 5000, "1e400", "NaN", "-1", "65536", "true", '"443"', "443.0"],
)
def test_odd_local_ports_are_malformed_evidence_never_a_crash(port: str) -> None:
    call = '{"role": "report", "connection": "c1", "scheme": "https", "peer": null, "peer_spki_sha256": null'
    raw = ('{"calls": [' + call + ', "local_port": ' + port + "}]}").encode()
    with pytest.raises(EvidenceError):
        parse_tls_json(raw)


# ------------------------------------------------------------------- the proxy: a gateway that cuts a stream midway


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_stream_cut_by_the_gateway_ends_the_client_stream_and_the_ticket_says_why(
    aiohttp_server: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    """FIXED (web/proxy.py _relay): the gateway resets the connection mid-stream; the proxy turned the ClientError
    into a 502 envelope after the stream's headers had gone, so the client hung on an unterminated chunked body and
    its ticket (already in X-Verification-Id) was a 404 forever."""

    async def cut(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b'data: {"id":"chatcmpl-cut","model":"sim/echo-1","choices":[]}\n\n')
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.abort()
        return resp

    upstream = web.Application()
    upstream.router.add_post("/v1/chat/completions", cut)
    server = await aiohttp_server(upstream)
    db = tmp_path / "verifier.db"
    keys = make_keys(db)
    settings = simulator_settings(db, str(server.make_url("")).rstrip("/"), dcap_workers=1, signature_deadline=0)
    proxy = await aiohttp_server(create_proxy_app(settings, mode=mode, clock=clock))
    headers = {"X-Verifier-Key": keys[Role.SUBMIT], "Authorization": f"Bearer {API_KEY}"}
    body = json.dumps({"model": MODEL, "stream": True})
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        async with session.post(str(proxy.make_url("/v1/chat/completions")), data=body, headers=headers) as resp:
            assert resp.status == 200
            ticket = resp.headers[ID_HEADER]
            with pytest.raises(aiohttp.ClientPayloadError):  # an incomplete stream, never a clean end, never a hang
                await asyncio.wait_for(resp.read(), 10)
        url = str(proxy.make_url(f"/v1/verifications/{ticket}"))
        async with session.get(url, params={"wait": "10"}, headers=headers) as answer:
            assert answer.status == 502
            error = (await answer.json())["error"]
    assert error["code"] == "verification_failed" and "upstream_unavailable" in error["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# ------------------------------------------------------------------- the gateway key with verifier workers


async def test_a_gateway_echoing_the_key_in_recorded_headers_leaks_it_nowhere(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    """The gateway copies Authorization into x-request-id (an allow-listed header, kept in headers.json); the worker
    redacts it before the verdict and bundle come back, and the ledger holds no form of it."""

    @web.middleware
    async def echo(request: web.Request, handler: Any) -> web.StreamResponse:
        resp = await handler(request)
        if request.path == "/v1/chat/completions":
            resp.headers["x-request-id"] = request.headers.get("Authorization", "")
        return resp

    env = await start(aiohttp_server, tmp_path, verify_workers=1, middlewares=(echo,))
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{env.proxy_url}/v1/chat/completions",
            data=json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}),
            headers={"X-Verifier-Key": env.keys[Role.SUBMIT], "Authorization": f"Bearer {API_KEY}"},
        ) as resp,
    ):
        assert resp.status == 200
        verdict_id = resp.headers[ID_HEADER]
    bundle, verdict = bundle_of(env, verdict_id), await verdict_by_id(env, verdict_id)
    assert "upstream_key_redacted" in {n["code"] for n in verdict["notes"]}
    assert bundle.headers is not None and b"x-request-id" in bundle.headers
    forms = {f.encode() for f in secret_forms([API_KEY])}
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("verifier.db*"))
    assert [f for f in forms if f in stored or f in bundle.headers or f in (bundle.tls or b"")] == []


# ------------------------------------------------------------------- upstream TLS trust (Intel PCS, NRAS, gateway)


def test_the_upstream_tls_context_always_verifies_certificates_and_hostnames(tmp_path: Path) -> None:
    assert connector_ssl(None) is True  # aiohttp's default: the system store, verified
    ca = tmp_path / "ca.pem"
    ca.write_bytes(SimulatorTls(b"any seed").ca_pem)  # any PEM CA will do
    ctx = upstream_ssl_context(str(ca))
    assert ctx is not None and ctx.verify_mode is ssl.CERT_REQUIRED and ctx.check_hostname is True
    assert connector_ssl(ctx) is ctx


def test_no_source_outside_the_simulator_switches_tls_verification_off() -> None:
    weakening = re.compile(
        r"ssl\s*=\s*False|verify_ssl\s*=\s*False|CERT_NONE|check_hostname\s*=\s*False|_create_unverified_context"
        r"|verify\s*=\s*False"
    )
    hits = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "verifier").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if weakening.search(line)
    ]
    assert hits == []


def test_a_model_served_pass_from_the_signed_body_alone_is_not_held_over_a_verdict_without_the_check() -> None:
    """A verdict recorded before model.served existed (no row) and a bundle without headers.json: the recomputed pass
    rests on no observer data, so a re-verification keeps it (no observation_not_upgraded for old ledgers)."""
    from verifier.core.model import CheckResult, Severity, Status
    from verifier.engine.ceiling import no_upgrade

    body_only = CheckResult("model.served", Status.PASS, Severity.REQUIRED, None, "m", {"observed": False})
    with_headers = CheckResult("model.served", Status.PASS, Severity.REQUIRED, None, "m", {"observed": True})
    failed = CheckResult("model.served", Status.FAIL, Severity.REQUIRED, "model_fallback", "m", {})
    assert no_upgrade([body_only], {}, prior_id="v")[0].status is Status.PASS
    held = no_upgrade([with_headers], {}, prior_id="v")[0]
    assert (held.status, held.reason) == (Status.INDETERMINATE, "observation_not_upgraded")
    # a recorded fail is held whatever the recomputation rests on (edited or removed headers.json)
    kept = no_upgrade([body_only], {"model.served": failed}, prior_id="v")[0]
    assert (kept.status, kept.reason) == (Status.FAIL, "model_fallback")
