"""TLS channel binding (tls.binds_peer): the attested TLS key against the live peer of the serving connection.

End to end over loopback TLS: the simulated gateway serves https with its own test CA (trusted explicitly through
--ca-file / an SSL context, never by switching verification off), each replica with its own key; the verifying proxy
relays a completion on a one-connection channel and fetches the signature and report on it. Then: the replica and
wrong-key faults, plain http, the HTTP API (no observed completion), offline reproduction from tls.json, tampering
(a re-appraisal never upgrades), the real NEAR TLS-layout fixture, the policy keys and the tls.json parser.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from click.testing import CliRunner
from fixture_bundles import ATT, NEAR_AT, near_two_layer
from hypothesis import given
from hypothesis import strategies as st
from sim_bundle import Offline
from web_env import clock, make_keys

from verifier.adapters.gateway import GatewayClient
from verifier.adapters.ledger import Ledger
from verifier.app.keys import Role
from verifier.app.profiles import anchors_for
from verifier.app.services import open_services
from verifier.appraise.policy import default_policy, parse_policy
from verifier.cli import main
from verifier.core.errors import ConfigError, EvidenceError
from verifier.core.model import CheckResult, Severity, Status
from verifier.core.trust import PRODUCTION
from verifier.demo import run_demo, serve, simulator_settings
from verifier.engine.ceiling import no_upgrade
from verifier.engine.context import Context
from verifier.engine.evaluate import evaluate
from verifier.evidence.bundle import Bundle
from verifier.evidence.tls_observation import PeerObservation, TlsObservations, parse_tls_json
from verifier.simulator import SimulatorWorld
from verifier.simulator.gateway import SimulatedGateway, SimulatorConfig
from verifier.web.proxy import ERROR_HEADER, ID_HEADER, STATUS_HEADER, create_proxy_app

EXIT = {"pass": 0, "fail": 2, "indeterminate": 3}
MODEL = "sim/echo-1"
REQUIRE = b'[policy]\nid = "tls-required"\n[tls]\nrequire_binding = true\n'


@dataclass
class Proxied:
    gateway: SimulatedGateway
    gateway_url: str
    proxy_url: str
    db: Path
    keys: dict[Role, str]

    async def complete(self, *, stream: bool = False) -> dict[str, Any]:
        """One completion through the proxy; its verdict (the ticket's, for a stream)."""
        body = {"model": MODEL, "stream": stream, "messages": [{"role": "user", "content": "is this bound?"}]}
        headers = {"X-Verifier-Key": self.keys[Role.SUBMIT], "Authorization": "Bearer sk-test-tls"}
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{self.proxy_url}/v1/chat/completions", json=body, headers=headers) as resp:
                assert resp.status == 200, await resp.text()
                await resp.read()
                assert resp.headers.get(ERROR_HEADER) is None, resp.headers.get(ERROR_HEADER)
                verdict_id = resp.headers[ID_HEADER]
                status = resp.headers.get(STATUS_HEADER)
            async with s.get(f"{self.proxy_url}/v1/verifications/{verdict_id}", headers=headers) as resp:
                verdict: dict[str, Any] = await resp.json()
        assert status in (None, verdict["status"])
        return verdict

    def bundle(self, verdict: dict[str, Any]) -> Bundle:
        with Ledger.open(self.db) as ledger:
            return Bundle.from_files(ledger.evidence(verdict["id"]))


@contextlib.asynccontextmanager
async def proxied(
    tmp_path: Path,
    *,
    faults: tuple[str, ...] = (),
    tls: bool = True,
    report_format: str = "phala_flat",
    policy: bytes | None = None,
    mode: str = "sync",
    verify_workers: int = 0,
) -> AsyncIterator[Proxied]:
    config = SimulatorConfig(
        clock=clock,
        tls=tls,
        faults=frozenset(faults),
        report_format=report_format,
        three_part_text=report_format == "near_two_layer",
    )
    gateway = SimulatedGateway(SimulatorWorld(), config)
    settings: dict[str, Any] = {"dcap_workers": 1}
    if gateway.tls is not None:
        settings["ca_file"] = str(gateway.tls.write_ca(tmp_path / "simulator-ca.pem"))
    if policy is not None:
        (tmp_path / "policy.toml").write_bytes(policy)
        settings["policy_path"] = str(tmp_path / "policy.toml")
    db = tmp_path / "verifier.db"
    keys = make_keys(db)
    async with serve(gateway.app(), gateway.ssl_context() if tls else None) as gateway_url:
        app = create_proxy_app(
            simulator_settings(db, gateway_url, **settings), mode=mode, clock=clock, verify_workers=verify_workers
        )
        async with serve(app) as proxy_url:
            yield Proxied(gateway, gateway_url, proxy_url, db, keys)


def check(verdict: dict[str, Any], check_id: str = "tls.binds_peer") -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in verdict["checks"] if c["id"] == check_id)
    return found


def notes(verdict: dict[str, Any]) -> dict[str, str]:
    return {n["code"]: n["message"] for n in verdict["notes"]}


def recorded(tmp_path: Path, **kw: Any) -> tuple[dict[str, Any], Bundle]:
    """One proxied completion's verdict and its bundle as the ledger keeps it (from a sync test: the CLI runs its
    own event loop)."""

    async def run() -> tuple[dict[str, Any], Bundle]:
        async with proxied(tmp_path, **kw) as env:
            verdict = await env.complete()
            return verdict, env.bundle(verdict)

    return asyncio.run(run())


def verify_bundle(tmp_path: Path, bundle: Bundle, verdict: dict[str, Any], *args: str) -> dict[str, Any]:
    """`verifier verify-bundle` (the CLI, offline) on ``bundle`` at the verdict's own verification time."""
    root = tmp_path / f"bundle-{len(list(tmp_path.glob('bundle-*')))}"
    for rel, body in bundle.files().items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(body)
    at = str(verdict["times"]["verified_at"])
    result = CliRunner().invoke(main, ["verify-bundle", str(root), "--at", at, "--trust", "simulator", "--json", *args])
    offline: dict[str, Any] = json.loads(result.output)
    assert result.exit_code == EXIT[offline["status"]], result.output[-2000:]
    return offline


# ---------------------------------------------------------------------------------------------- live, over TLS


async def test_proxy_over_tls_binds_the_connection_that_served_the_completion(tmp_path: Path) -> None:
    async with proxied(tmp_path) as env:
        verdict = await env.complete()
        bundle = env.bundle(verdict)
    row = check(verdict)
    assert (row["status"], row["severity"]) == ("pass", "advisory")
    replica = env.gateway.tls.replicas[0] if env.gateway.tls else None
    assert replica is not None and row["details"]["peer_spki_sha256"] == replica.spki_sha256
    assert row["details"]["served_by"] == "completion" and row["details"]["observed"] == "live"
    assert row["details"]["report_on_same_connection"] is True
    assert verdict["status"] == "pass"
    assert verdict["subject"]["tls_binding"] == {
        "bound": True,
        "connection": "completion",
        "observed": "live",
        "reason": None,
    }
    assert "TLS terminates in the attested TD" in notes(verdict)["tls_channel_bound"]
    assert check(verdict, "tdx.binds_signer")["message"].endswith("(tls_fingerprint)")
    assert env.gateway.requests_seen[-1]["include_tls_fingerprint"] == "true"
    # tls.json: the completion, the signature and the report on ONE connection, its peer the replica's key
    assert bundle.tls is not None
    calls = {c.role: c for c in parse_tls_json(bundle.tls).calls}
    assert set(calls) == {"completion", "signature", "report"}
    assert {c.connection for c in calls.values()} == {"c1"}
    assert {c.peer_spki_sha256 for c in calls.values()} == {replica.spki_sha256}
    assert b"sk-test-tls" not in bundle.tls  # observer data only: never a key


async def test_the_next_exchange_reuses_the_kept_alive_channel_with_a_log_of_its_own(tmp_path: Path) -> None:
    async with proxied(tmp_path) as env:
        first, second = await env.complete(), await env.complete()
        logs = [parse_tls_json(env.bundle(v).tls or b"").calls for v in (first, second)]
    assert [check(v)["status"] for v in (first, second)] == ["pass", "pass"]
    assert [len(calls) for calls in logs] == [3, 3]  # each bundle records its own exchange only
    ports = {c.local_port for calls in logs for c in calls}
    assert len(ports) == 1  # one TLS connection served both exchanges: no handshake per completion


async def test_a_streamed_completion_is_bound_on_its_own_connection_too(tmp_path: Path) -> None:
    async with proxied(tmp_path, mode="async") as env:
        verdict = await env.complete(stream=True)
    assert check(verdict)["status"] == "pass"
    assert check(verdict)["details"]["report_on_same_connection"] is True


async def test_with_verifier_workers_the_completion_peer_travels_with_the_exchange(tmp_path: Path) -> None:
    # a worker process fetches on its own connection: never labelled the completion's, and still compared with it
    async with proxied(tmp_path, verify_workers=1) as env:
        verdict = await env.complete()
        bundle = env.bundle(verdict)
    row = check(verdict)
    assert row["status"] == "pass" and row["details"]["served_by"] == "completion"
    assert row["details"]["report_on_same_connection"] is False
    calls = {c.role: c for c in parse_tls_json(bundle.tls or b"").calls}
    assert calls["completion"].connection == "c1" and calls["report"].connection != "c1"
    assert calls["completion"].peer_spki_sha256 == calls["report"].peer_spki_sha256  # one replica: the same key


async def test_a_report_from_another_replica_is_indeterminate_never_a_silent_pass(tmp_path: Path) -> None:
    async with proxied(tmp_path, faults=("tls_other_replica",)) as env:
        verdict = await env.complete()
        bundle = env.bundle(verdict)
    row = check(verdict)
    assert (row["status"], row["reason"]) == ("indeterminate", "tls_peer_mismatch_replica")
    assert "another replica" in row["message"]
    tls = env.gateway.tls
    assert tls is not None
    assert row["details"]["got"] == tls.replicas[0].spki_sha256  # the completion's replica
    assert row["details"]["expected"] == tls.replicas[1].spki_sha256  # the report's own replica attested its key
    calls = {c.role: c for c in parse_tls_json(bundle.tls or b"").calls}
    assert calls["completion"].connection != calls["report"].connection == calls["signature"].connection
    assert verdict["subject"]["tls_binding"]["bound"] is False
    assert "tls_channel_not_bound" in notes(verdict)
    assert verdict["status"] == "pass"  # advisory by default: reported, not deciding


async def test_a_key_no_replica_presents_fails(tmp_path: Path) -> None:
    async with proxied(tmp_path, faults=("tls_wrong_fingerprint",)) as env:
        verdict = await env.complete()
    row = check(verdict)
    assert (row["status"], row["reason"]) == ("fail", "tls_peer_not_attested")
    assert env.gateway.tls is not None and row["details"]["expected"] == env.gateway.tls.rogue_spki_sha256
    assert check(verdict, "tdx.binds_signer")["status"] == "pass"  # the quote binds the signer with that key


@pytest.mark.parametrize(
    ("faults", "status"),
    [((), "pass"), (("tls_other_replica",), "indeterminate"), (("tls_wrong_fingerprint",), "fail")],
)
async def test_a_policy_that_requires_the_binding_decides_on_it(
    tmp_path: Path, faults: tuple[str, ...], status: str
) -> None:
    async with proxied(tmp_path, faults=faults, policy=REQUIRE) as env:
        verdict = await env.complete()
    assert check(verdict)["severity"] == "required"
    assert verdict["status"] == status


async def test_plain_http_has_no_peer_to_bind_and_says_so(tmp_path: Path) -> None:
    async with proxied(tmp_path, tls=False) as env:
        verdict = await env.complete()
        bundle = env.bundle(verdict)
    row = check(verdict)
    assert (row["status"], row["reason"]) == ("skipped", "no_tls")
    assert verdict["status"] == "pass"
    assert verdict["subject"]["tls_binding"]["reason"] == "no_tls"
    assert "plain http" in notes(verdict)["tls_channel_not_bound"]
    assert "include_tls_fingerprint" not in env.gateway.requests_seen[-1]  # nothing to bind: not asked
    calls = parse_tls_json(bundle.tls or b"").calls
    assert {(c.scheme, c.peer_spki_sha256) for c in calls} == {("http", None)}


async def test_plain_http_with_the_binding_required_is_never_a_pass(tmp_path: Path) -> None:
    async with proxied(tmp_path, tls=False, policy=REQUIRE) as env:
        verdict = await env.complete()
    assert check(verdict)["status"] == "skipped" and verdict["status"] == "indeterminate"


async def test_the_http_api_binds_the_connection_it_fetched_the_report_on(tmp_path: Path) -> None:
    config = SimulatorConfig(clock=clock, tls=True)
    (result,) = await run_demo(config=config, db_dir=tmp_path)
    row = check(result.verdict)
    assert row["status"] == "pass" and row["details"]["served_by"] == "report"
    assert "the completion was captured elsewhere" in notes(result.verdict)["tls_channel_bound"]


async def test_the_simulator_certificate_is_refused_unless_trusted_explicitly(tmp_path: Path) -> None:
    gateway = SimulatedGateway(SimulatorWorld(), SimulatorConfig(clock=clock, tls=True))
    assert gateway.tls is not None
    async with serve(gateway.app(), gateway.ssl_context()) as url, aiohttp.ClientSession() as default:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await default.get(f"{url}/v1/models")
        trusting = aiohttp.TCPConnector(ssl=gateway.tls.client_context())
        async with aiohttp.ClientSession(connector=trusting) as s, s.get(f"{url}/v1/models") as resp:
            assert resp.status == 200


async def test_the_gateway_client_asks_for_the_tls_layout_over_https_only(aiohttp_server: Any) -> None:
    seen: list[dict[str, str]] = []

    async def report(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        return web.json_response({"intel_quote": "00"})

    app = web.Application()
    app.router.add_get("/v1/attestation/report", report)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        client = GatewayClient(session, str(server.make_url("/")))
        await client.report(
            model="m", nonce=bytes(32), signing_address=None, signing_algo="ecdsa", tls_params={"version": "2"}
        )
    assert "version" not in seen[0]  # http: no certificate to bind, so the layout is not asked for
    assert [p.scheme for p in client.peers()] == ["http"]


# ---------------------------------------------------------------------------------------------- offline


def test_verify_bundle_reproduces_the_check_offline_from_tls_json(tmp_path: Path) -> None:
    for faults in ((), ("tls_other_replica",), ("tls_wrong_fingerprint",)):
        case = tmp_path / ("-".join(faults) or "honest")
        case.mkdir()
        verdict, bundle = recorded(case, faults=faults)
        offline = verify_bundle(case, bundle, verdict)
        live, again = check(verdict), check(offline)
        assert (again["status"], again["reason"]) == (live["status"], live["reason"]), faults
        assert offline["status"] == verdict["status"]
        if live["status"] == "pass":
            assert again["details"]["observed"] == "recorded"
            assert offline["subject"]["tls_binding"]["observed"] == "recorded"
            assert "unauthenticated observer data" in notes(offline)["tls_channel_bound"]


def _tampered(bundle: Bundle, fingerprint: str) -> Bundle:
    """tls.json edited so that every recorded peer is ``fingerprint`` (what an attacker holding the bundle can do)."""
    doc = json.loads(bundle.tls or b"")
    for call in doc["calls"]:
        call["peer_spki_sha256"] = fingerprint
    return replace(bundle, tls=json.dumps(doc).encode())


@pytest.mark.parametrize("fault", ["tls_other_replica", "tls_wrong_fingerprint"])
def test_a_tampered_tls_json_cannot_turn_a_mismatch_into_a_pass(tmp_path: Path, fault: str) -> None:
    verdict, bundle = recorded(tmp_path, faults=(fault,))
    live = check(verdict)
    assert live["status"] != "pass"
    forged = _tampered(bundle, live["details"]["expected"])  # every peer "was" the attested key
    # against the recorded verdict (verify-bundle --prior, the way reverify and jobs re-appraise): never upgraded
    (tmp_path / "verdict.json").write_text(json.dumps(verdict))
    held = verify_bundle(tmp_path, forged, verdict, "--prior", str(tmp_path / "verdict.json"))
    row = check(held)
    assert (row["status"], row["reason"]) == (live["status"], live["reason"])
    assert row["details"]["recomputed"] == "pass" and "not upgraded" in row["message"]
    assert held["subject"]["tls_binding"]["bound"] is False
    # without the recorded verdict the forgery is only as good as its recorder, and the verdict says exactly that
    alone = verify_bundle(tmp_path, forged, verdict)
    assert check(alone)["details"]["observed"] == "recorded"
    assert "only as trustworthy as whoever recorded the bundle" in notes(alone)["tls_channel_bound"]


async def test_reverify_holds_the_recorded_mismatch(tmp_path: Path) -> None:
    async with proxied(tmp_path, faults=("tls_other_replica",)) as env:
        verdict = await env.complete()
    settings = simulator_settings(env.db, env.gateway_url, dcap_workers=1, offline=True)
    async with open_services(settings, clock=clock) as svc:
        again = await svc.records.reverify(verdict["id"], at=verdict["times"]["verified_at"])
    assert (check(again)["status"], check(again)["reason"]) == ("indeterminate", "tls_peer_mismatch_replica")
    assert again["supersedes"] == verdict["id"]


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["calls"][0].update(bound=True),  # an outcome smuggled in as a field
        lambda d: d["calls"].append(dict(d["calls"][0])),  # a role twice
        lambda d: d["calls"][1].update(peer_spki_sha256="00" * 32),  # one connection, two peers
        lambda d: d["calls"][0].update(scheme="http"),  # a certificate over http
        lambda d: d.update(verdict="pass"),
    ],
)
def test_a_malformed_tls_json_fails_the_check_never_passes(tmp_path: Path, change: Any) -> None:
    verdict, bundle = recorded(tmp_path)
    doc = json.loads(bundle.tls or b"")
    change(doc)
    offline = verify_bundle(tmp_path, replace(bundle, tls=json.dumps(doc).encode()), verdict)
    assert (check(offline)["status"], check(offline)["reason"]) == ("fail", "malformed_evidence")


def test_a_reappraisal_never_upgrades_an_observer_check_but_may_downgrade_it() -> None:
    policy = default_policy()

    def row(status: Status, reason: str | None = None, check_id: str = "tls.binds_peer") -> CheckResult:
        return CheckResult(check_id, status, policy.severity(check_id), reason, "m")

    now = (row(Status.PASS), row(Status.PASS, check_id="tdx.quote"))
    held = no_upgrade(now, {"tls.binds_peer": row(Status.FAIL, "tls_peer_not_attested")}, prior_id="v_1")
    assert (held[0].status, held[0].reason) == (Status.FAIL, "tls_peer_not_attested") and held[1] == now[1]
    unjudged = no_upgrade(now, {"tls.binds_peer": row(Status.SKIPPED, "blocked")}, prior_id=None)
    assert (unjudged[0].status, unjudged[0].reason) == (Status.INDETERMINATE, "observation_not_upgraded")
    other = no_upgrade(
        now,
        {"tls.binds_peer": row(Status.PASS), "tdx.quote": row(Status.FAIL, "x", check_id="tdx.quote")},
        prior_id=None,
    )
    assert other == now  # only observer checks are held
    down = (row(Status.INDETERMINATE, "tls_peer_mismatch_replica"),)
    assert no_upgrade(down, {"tls.binds_peer": row(Status.PASS)}, prior_id=None) == down


# ---------------------------------------------------------------------------------------------- the real fixture


def _recorded_peer() -> str:
    """The peer SPKI the capture of the NEAR fixture saw on its report connection (attestation_http_meta.json)."""
    meta = json.loads((ATT / "nearcloud-two-layer-ed25519-tls-20260629" / "attestation_http_meta.json").read_text())
    return hashlib.sha256(base64.b64decode(meta["peer_spki_der_base64"])).hexdigest()


def _with_peer(bundle: Bundle, fingerprint: str) -> Bundle:
    call = PeerObservation("report", "c1", "https", fingerprint, "203.0.113.7:443", 50000)
    return replace(bundle, tls=TlsObservations(calls=(call,)).to_json_bytes())


def _fixture_verdict(offline: Offline, bundle: Bundle) -> dict[str, Any]:
    ctx = Context(policy=default_policy(), now=NEAR_AT, anchors=anchors_for(PRODUCTION), quotes=offline.pool)
    return offline.loop.run_until_complete(evaluate(bundle, ctx)).verdict.to_json()


def test_the_real_near_tls_fixture_binds_report_data_and_is_no_pass_without_a_peer(offline: Offline) -> None:
    verdict = _fixture_verdict(offline, near_two_layer(with_gateway_signature=True))
    assert check(verdict, "tdx.binds_signer")["status"] == "pass"
    assert "(tls_fingerprint)" in check(verdict, "tdx.binds_signer")["message"]
    assert (check(verdict)["status"], check(verdict)["reason"]) == ("skipped", "not_in_bundle")
    assert verdict["subject"]["tls_binding"]["bound"] is False


def test_the_real_near_tls_fixture_with_its_recorded_peer(offline: Offline) -> None:
    gateway_signed = near_two_layer(with_gateway_signature=True)
    bound = _fixture_verdict(offline, _with_peer(gateway_signed, _recorded_peer()))
    assert check(bound)["status"] == "pass" and check(bound)["details"]["observed"] == "recorded"
    other = _fixture_verdict(offline, _with_peer(gateway_signed, hashlib.sha256(b"another key").hexdigest()))
    assert (check(other)["status"], check(other)["reason"]) == ("fail", "tls_peer_not_attested")
    # signed by the model key: the TLS peer is the gateway, whose attestation is not the signer's
    model_signed = _fixture_verdict(offline, _with_peer(near_two_layer(), _recorded_peer()))
    assert (check(model_signed)["status"], check(model_signed)["reason"]) == (
        "indeterminate",
        "tls_gateway_not_verified",
    )


# ---------------------------------------------------------------------------------------------- policy


def test_the_binding_is_advisory_by_default_and_asked_for() -> None:
    policy = default_policy()
    assert policy.severity("tls.binds_peer") is Severity.ADVISORY
    assert policy.tls.request_params == (("include_tls_fingerprint", "true"),)


def test_require_binding_makes_the_check_required() -> None:
    policy = parse_policy(REQUIRE, source="t")
    assert policy.severity("tls.binds_peer") is Severity.REQUIRED and policy.tls.require_binding
    both = parse_policy(b'[tls]\nrequest_fingerprint = ["include_tls_fingerprint=true", "version=2"]\n', source="t")
    assert both.tls.request_params == (("include_tls_fingerprint", "true"), ("version", "2"))


@pytest.mark.parametrize(
    "text",
    [
        b'[tls]\nrequire_binding = true\n[checks]\n"tls.binds_peer" = "advisory"\n',
        b"[tls]\nrequire_binding = true\nrequest_fingerprint = []\n",
        b'[tls]\nrequest_fingerprint = ["tls=please"]\n',
        b'[checks]\n"tls.binds_peer" = "required"\n"nonce.fresh" = "advisory"\n',
    ],
)
def test_contradictory_tls_policies_are_refused_at_load(text: bytes) -> None:
    with pytest.raises(ConfigError):
        parse_policy(text, source="t")


# ---------------------------------------------------------------------------------------------- tls.json parser

_FP = st.one_of(st.none(), st.binary(min_size=32, max_size=32).map(bytes.hex))
_CALL = st.builds(
    PeerObservation,
    role=st.sampled_from(["completion", "signature", "report"]),
    connection=st.integers(1, 999).map(lambda i: f"c{i}"),
    scheme=st.just("https"),
    peer_spki_sha256=_FP,
    peer=st.one_of(st.none(), st.sampled_from(["127.0.0.1:443", "[::1]:8443", "203.0.113.7:443"])),
    local_port=st.one_of(st.none(), st.integers(1, 65535)),
)


def _consistent(calls: list[PeerObservation]) -> tuple[PeerObservation, ...]:
    by_role = {c.role: c for c in calls}  # one per role
    first: dict[str, PeerObservation] = {}
    out = []
    for c in by_role.values():  # one description per connection label
        f = first.setdefault(c.connection, c)
        out.append(replace(c, peer_spki_sha256=f.peer_spki_sha256, peer=f.peer, local_port=f.local_port))
    return tuple(out)


@given(st.lists(_CALL, max_size=5).map(_consistent))
def test_tls_json_round_trips(calls: tuple[PeerObservation, ...]) -> None:
    observed = TlsObservations(calls=calls)
    assert parse_tls_json(observed.to_json_bytes()) == observed


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=6),
    max_leaves=30,
)


@given(st.lists(_CALL, min_size=1, max_size=3).map(_consistent), st.data())
def test_tls_json_mutations_parse_or_raise_evidence_error(calls: tuple[PeerObservation, ...], data: Any) -> None:
    doc = json.loads(TlsObservations(calls=calls).to_json_bytes())
    mutated = copy.deepcopy(doc)
    call = data.draw(st.sampled_from(mutated["calls"]))
    key = data.draw(st.sampled_from([*sorted(call), "extra"]))
    call[key] = data.draw(_JSON)
    try:
        parsed = parse_tls_json(json.dumps(mutated).encode())
    except EvidenceError:
        return
    for c in parsed.calls:  # whatever parses satisfies every invariant the check relies on
        assert c.role in ("completion", "signature", "report") and c.scheme in ("https", "http")
        assert c.peer_spki_sha256 is None or (len(c.peer_spki_sha256) == 64 and c.scheme == "https")


@given(st.binary(max_size=300) | _JSON.map(lambda v: json.dumps(v).encode()))
def test_arbitrary_input_parses_or_raises_evidence_error(raw: bytes) -> None:
    with contextlib.suppress(EvidenceError):
        parse_tls_json(raw)
