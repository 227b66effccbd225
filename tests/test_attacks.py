"""Adversarial review: a prover controlling the gateway, the report JSON and everything but the TEE hardware keys.

Evidence is forged from the simulator's own keys (``Forge``): reports built for any nonce, texts re-signed with the
gateway's keys, attestations mixed from several fetches or from another dstack app on the same genuine machine,
GPU evidence and NRAS answers moved between attestations. Each bundle is evaluated offline (dcap-qvl in its worker,
simulator anchors) against a policy that pins the simulator CVM, as an operator would.

Every test asserts the secure outcome. The first group are the review's findings (each failed on the code as it was
reviewed; the fixes made them pass); the rest prove that an attack was refused already (regression tests).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import secrets
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sim_bundle import NOW, Offline

from verifier.appraise.policy import Policy, parse_policy
from verifier.appraise.refs import parse_refs
from verifier.core.errors import ConfigError
from verifier.core.model import NonceOrigin
from verifier.core.verdict import Verdict
from verifier.evidence.bundle import Bundle, BundleMeta
from verifier.simulator import SimulatorWorld
from verifier.simulator.gateway import SimulatedGateway, SimulatorConfig

MODEL = "sim/echo-1"
REQUEST = b'{"model":"sim/echo-1","messages":[{"role":"user","content":"hi"}]}'
RESPONSE = b'{"id":"chatcmpl-attack","object":"chat.completion","choices":[]}'


# ------------------------------------------------------------------ the forger


class Forge:
    """Everything a malicious gateway/prover can make with the simulator's keys, for any nonce."""

    def __init__(self, world: SimulatorWorld | None = None, *, fmt: str = "phala_flat", gpu_count: int = 1) -> None:
        self.world = world or SimulatorWorld()
        self.gw = SimulatedGateway(
            self.world, SimulatorConfig(report_format=fmt, gpu_count=gpu_count, clock=lambda: float(NOW))
        )

    def report(self, nonce: bytes, *, algo: str = "ecdsa", model: str = MODEL) -> dict[str, Any]:
        return self.gw._build_report(nonce, algo, model)

    def signer(self, who: str) -> Any:
        """ "ecdsa" / "ed25519": the model (or flat) TD's key; "gateway": the NEAR gateway's; "rogue": no TD's."""
        if who == "gateway":
            return self.gw._gateway_signer
        if who == "rogue":
            return self.gw._rogue["ecdsa"]
        return self.gw._signers[who]

    def bundle(
        self,
        report: dict[str, Any],
        nonce: bytes,
        *,
        signer: str,
        model: str = MODEL,
        text_model: str | None = None,
        nras_payloads: list[str] | None = None,
    ) -> Bundle:
        s = self.signer(signer)
        hashes = f"{hashlib.sha256(REQUEST).hexdigest()}:{hashlib.sha256(RESPONSE).hexdigest()}"
        text = f"{text_model}:{hashes}" if text_model else hashes
        sig = {"text": text, "signature": s.sign(text), "signing_address": s.address, "signing_algo": s.algo}
        nras = {"jwks.json": json.dumps(self.world.jwks()).encode()}
        for i, payload in enumerate(_gpu_payloads(report) if nras_payloads is None else nras_payloads):
            name = "response.json" if i == 0 else f"response-{i}.json"
            nras[name] = json.dumps(self.world.nras_response(payload, now=NOW)).encode()
        fmspc = self.world.platform.fmspc.hex().upper()
        meta = BundleMeta(
            model=model,
            chat_id="chatcmpl-attack",
            signing_algo=s.algo,
            signing_address=s.address,
            nonce=nonce,
            nonce_origin=NonceOrigin.MINTED,
            captured_at=NOW,
            gateway="http://gateway",
            report_fetched_at=NOW,
        )
        return Bundle(
            meta=meta,
            request=REQUEST,
            response=RESPONSE,
            signature=json.dumps(sig).encode(),
            report=json.dumps(report).encode(),
            collateral={f"tdx-{fmspc}.json": self.world.collateral_json(NOW).encode()},
            nras=nras,
        )


def _gpu_payloads(report: dict[str, Any]) -> list[str]:
    """nvidia_payloads in the order the engine numbers NRAS answers (response.json, response-1.json, ...)."""
    if "gateway_attestation" in report or "model_attestations" in report:
        entries = [e for e in (report.get("gateway_attestation"),) if e] + list(report.get("model_attestations", []))
    else:
        entries = [report]
    return [e["nvidia_payload"] for e in entries if e.get("nvidia_payload")]


def _boot_pins(world: SimulatorWorld) -> str:
    ident = world.identity
    return "".join(
        f'allowed_{k} = ["{v.hex()}"]\n'
        for k, v in (
            ("mrtd", ident.mr_td),
            ("rtmr0", ident.rtmrs[0]),
            ("rtmr1", ident.rtmrs[1]),
            ("rtmr2", ident.rtmrs[2]),
        )
    )


def strict_policy(world: SimulatorWorld, extra: str = "", *, boot: bool = True, app_ids: bool = True) -> Policy:
    """What an operator pins after review: the boot chain and the app id of the model (require_pinned = true)."""
    text = '[policy]\nid = "strict"\n[tdx]\n' + (_boot_pins(world) if boot else "")
    if app_ids:
        text += f'[tdx.app_ids]\n"{MODEL}" = ["{world.identity.app_id.hex()}"]\n'
    return parse_policy((text + extra).encode(), source="strict.toml")


@pytest.fixture(scope="module")
def flat() -> Forge:
    return Forge(fmt="phala_flat")


@pytest.fixture(scope="module")
def near() -> Forge:
    return Forge(fmt="near_two_layer", gpu_count=2)


@pytest.fixture(scope="module")
def cheap(flat: Forge) -> Forge:
    """Another dstack app (a cheaper model's) on the same genuine machine: its own app id and compose hash."""
    return Forge(flat.world.with_other_app(flat.world.app_compose + "\n# cheap model", label="cheap"))


def checks(v: Verdict) -> dict[str, tuple[str, str | None]]:
    return {c.id: (str(c.status), c.reason) for c in v.checks}


def tiers(v: Verdict) -> dict[str, Any]:
    return {k: t["tier"] for k, t in v.trust_vector.items()}


def nonce() -> bytes:
    return secrets.token_bytes(32)


# ------------------------------------------------------------------ baselines (the forger is honest here)


def test_an_honest_forged_flat_bundle_passes_the_strict_policy(offline: Offline, flat: Forge) -> None:
    n = nonce()
    v = offline.verdict(flat.bundle(flat.report(n), n, signer="ecdsa"), strict_policy(flat.world))
    assert str(v.status) == "pass", checks(v)
    assert set(tiers(v).values()) == {"affirming"}


def test_a_gateway_signed_near_response_passes_through_the_hop_and_says_so(offline: Offline, near: Forge) -> None:
    n = nonce()
    v = offline.verdict(
        near.bundle(near.report(n, algo="ed25519"), n, signer="gateway", text_model=MODEL), strict_policy(near.world)
    )
    assert str(v.status) == "pass", checks(v)
    assert v.attestation.paths == ("$.gateway_attestation",) and v.attestation.hops == ("$.model_attestations[0]",)
    assert "served_behind_gateway" in {n["code"] for n in v.notes}


# ------------------------------------------------------------------ FINDINGS (fail on the current code)


def test_the_trust_vector_never_affirms_instance_identity_when_no_quote_binds_the_signer(
    offline: Offline, flat: Forge
) -> None:
    # A policy the loader accepts (nothing rests on tdx.binds_signer) and that pins everything else. The prover
    # relabels the genuine attestation with a rogue key and signs the response with it: no TD holds that key.
    policy = strict_policy(flat.world, '[checks]\n"tdx.binds_signer" = "off"\n')
    n = nonce()
    report = flat.report(n)
    for entry in (report, *report["all_attestations"]):
        entry["signing_address"] = flat.signer("rogue").address
    v = offline.verdict(flat.bundle(report, n, signer="rogue"), policy)
    assert checks(v)["tdx.binds_signer"] == ("skipped", "policy_off")
    # the verdict may pass (the policy chose so), but it must not claim the signing key is the attested TD's
    assert tiers(v)["instance-identity"] != "affirming", v.trust_vector["instance-identity"]


def test_a_policy_that_requires_pinned_software_cannot_turn_the_pinning_checks_off(
    offline: Offline, flat: Forge
) -> None:
    # require_pinned (default true) documents "a pass requires a pinned app identity AND a pinned boot chain".
    text = '[policy]\nid = "strict"\n[checks]\n"tdx.app" = "off"\n"tdx.measurements" = "off"\n'
    try:
        policy = parse_policy(text.encode(), source="contradictory.toml")
    except ConfigError:
        return  # refused at load: secure
    assert policy.require_pinned
    n = nonce()
    v = offline.verdict(flat.bundle(flat.report(n), n, signer="ecdsa"), policy)  # nothing pins any software
    assert str(v.status) != "pass", (checks(v), tiers(v))


def test_the_trust_vector_warns_when_the_boot_chain_is_not_pinned(offline: Offline, flat: Forge) -> None:
    policy = strict_policy(flat.world, "[identity]\nrequire_pinned = false\n", boot=False)
    n = nonce()
    v = offline.verdict(flat.bundle(flat.report(n), n, signer="ecdsa"), policy)
    measurements = next(c for c in v.checks if c.id == "tdx.measurements")
    assert "NOT pinned" in measurements.message  # the check itself says so...
    assert tiers(v)["executables"] != "affirming", v.trust_vector["executables"]  # ...the trust vector must too


def test_a_model_agnostic_compose_hash_pin_does_not_claim_to_bind_the_model(
    offline: Offline, flat: Forge, cheap: Forge
) -> None:
    # The operator allows the composes of two reviewed apps (sim/echo-1's and a cheap model's). The prover serves
    # sim/echo-1 from the cheap app: a flat report names no model and a 2-part text signs none.
    composes = f'allowed_compose_hashes = ["{flat.world.compose_hash.hex()}", "{cheap.world.compose_hash.hex()}"]\n'
    policy = parse_policy(f'[policy]\nid = "strict"\n[tdx]\n{_boot_pins(flat.world)}{composes}'.encode(), source="c")
    n = nonce()
    v = offline.verdict(cheap.bundle(cheap.report(n), n, signer="ecdsa"), policy)
    # a model-agnostic allow-list restricts which apps may answer, it does not pin the app FOR this model
    assert checks(v)["tdx.app"] == ("indeterminate", "identity_not_pinned") and str(v.status) != "pass"
    assert "app_id_pin" not in v.subject.model_binding["by"], (str(v.status), v.subject.model_binding)


def test_a_wildcard_refs_app_does_not_claim_to_bind_a_model_pinned_to_another_app(
    offline: Offline, flat: Forge, cheap: Forge
) -> None:
    # refs pin sim/echo-1 to ITS app; the gateway's app is pinned under "*" (it fronts every model). An attestation
    # of the "*" app, not of sim/echo-1's, answers for sim/echo-1.
    ident = flat.world.identity
    chain = "".join(
        f'{k} = "{v.hex()}"\n'
        for k, v in (
            ("mrtd", ident.mr_td),
            ("rtmr0", ident.rtmrs[0]),
            ("rtmr1", ident.rtmrs[1]),
            ("rtmr2", ident.rtmrs[2]),
        )
    )
    refs = parse_refs(
        (
            f'[refs]\nid = "r"\n[[models."{MODEL}".app]]\napp_id = "{ident.app_id.hex()}"\nsource = '
            f'"manual"\nadded_at = 1\n'
            f'[[models."*".app]]\napp_id = "{cheap.world.identity.app_id.hex()}"\nsource = "manual: the gateway"\n'
            f'added_at = 1\n[[models."*".boot_chain]]\n{chain}source = "manual"\nadded_at = 1\n'
        ).encode(),
        source="r.toml",
    )
    n = nonce()
    v = offline.verdict(cheap.bundle(cheap.report(n), n, signer="ecdsa"), parse_policy(b"", source="d"), refs=refs)
    assert "app_id_pin" not in v.subject.model_binding["by"], (str(v.status), v.subject.model_binding)


@pytest.mark.parametrize("claim", ["absent", "relabelled"])
def test_os_image_is_never_called_production_on_the_reports_own_claim(
    offline: Offline, flat: Forge, claim: str
) -> None:
    # vm_config is tied to the quote only by os_image_hash, which is the same whatever the image is called: a dev
    # image ("dstack-nvidia-dev-0.5.8", operator login) relabelled or with vm_config dropped must not read production.
    n = nonce()
    report = flat.report(n)
    info = report["info"]  # shared by the flat report and its all_attestations copy
    if claim == "absent":
        del info["vm_config"]
    else:
        info["vm_config"] = json.dumps({**json.loads(info["vm_config"]), "image": "dstack-nvidia-0.5.8"})
    v = offline.verdict(flat.bundle(report, n, signer="ecdsa"), strict_policy(flat.world))
    assert checks(v)["tdx.os_image"][0] != "pass", next(c.message for c in v.checks if c.id == "tdx.os_image")


def test_a_reused_attestation_older_than_the_policy_window_is_not_a_pass(offline: Offline, flat: Forge) -> None:
    # meta.json says the report was reused from an earlier verdict and fetched 11 days before the response was
    # signed; the policy allows no reuse at all (max_attestation_age = 0).
    n = nonce()
    bundle = flat.bundle(flat.report(n), n, signer="ecdsa")
    reused = replace(
        bundle, meta=replace(bundle.meta, reused_from="v_01ARZ3NDEKTSV4RRFFQ69G5FAV", report_fetched_at=NOW - 10**6)
    )
    policy = strict_policy(flat.world)
    assert policy.max_attestation_age == 0
    v = offline.verdict(reused, policy)
    assert v.attestation.origin == "reused" and v.attestation.age_s == 10**6
    assert str(v.status) != "pass", checks(v)


@pytest.mark.parametrize(
    "text",
    [
        # two app-id lists for one model (names compare case-insensitively): the second silently replaces the first
        f'[tdx.app_ids]\n"Sim/Echo-1" = ["{"11" * 20}"]\n"sim/echo-1" = ["{"22" * 20}"]\n',
        # one alias for two models: requesting "x" accepts the signed/attested names of both a and b
        '[models]\n"a" = ["x"]\n"b" = ["x"]\n',
        # "*" means every model in refs, a literal name here
        f'[models]\n"{MODEL}" = ["*"]\n',
    ],
    ids=["app_ids_equal_up_to_case", "alias_of_two_models", "wildcard_alias"],
)
def test_the_policy_refuses_model_names_that_resolve_ambiguously(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_policy(text.encode(), source="ambiguous.toml")


# ------------------------------------------------------------------ attacks correctly refused: the NEAR hop


def _near_case(near: Forge, case: str) -> tuple[Bundle, Policy]:
    n = nonce()
    report = near.report(n, algo="ed25519")
    model_att = report["model_attestations"][0]
    policy = strict_policy(near.world)
    payloads: list[str] | None = None
    if case == "hop_off":
        policy = strict_policy(near.world, "[attestation]\nallow_gateway_hop = false\n")
    elif case in ("model_from_other_fetch", "gateway_from_other_fetch"):
        other = near.report(nonce(), algo="ed25519")
        if case == "model_from_other_fetch":
            report["model_attestations"] = other["model_attestations"]
        else:
            report["gateway_attestation"] = other["gateway_attestation"]
    elif case == "other_model_only":
        model_att["model_name"] = "cheap/llama-8b"
    elif case == "model_without_gpus":
        del model_att["nvidia_payload"]
    elif case == "gpus_moved_to_gateway":
        report["gateway_attestation"]["nvidia_payload"] = model_att.pop("nvidia_payload")
    elif case == "one_gpu_posing_as_two":
        model_att["nvidia_payload"] = near.world.gpu_payload(n, 2, repeat=True)
    elif case in ("model_of_another_app", "extra_model_of_another_app"):
        other_app = Forge(
            near.world.with_other_app(near.world.app_compose + "\n# other", label="other"),
            fmt="near_two_layer",
            gpu_count=2,
        )
        foreign = other_app.report(n, algo="ed25519")["model_attestations"][0]
        report["model_attestations"] = [foreign] if case == "model_of_another_app" else [model_att, foreign]
        payloads = [e["nvidia_payload"] for e in report["model_attestations"]]
    elif case == "nras_about_other_gpus":
        bundle = near.bundle(report, n, signer="gateway", text_model=MODEL)
        answer = near.world.nras_response(model_att["nvidia_payload"], now=NOW, other_gpus=True)
        return replace(bundle, nras={**bundle.nras, "response.json": json.dumps(answer).encode()}), policy
    elif case == "signature_kind_provider_tee":
        bundle = near.bundle(report, n, signer="gateway", text_model=MODEL)
        sig = {**json.loads(bundle.signature or b""), "signature_kind": "provider_tee"}
        return replace(bundle, signature=json.dumps(sig).encode()), policy
    return near.bundle(report, n, signer="gateway", text_model=MODEL, nras_payloads=payloads), policy


@pytest.mark.parametrize(
    ("case", "check_id", "outcome"),
    [
        ("hop_off", "gpu.evidence", ("indeterminate", "no_gpu_evidence")),
        ("model_from_other_fetch", "tdx.binds_nonce", ("fail", "nonce_mismatch")),
        ("gateway_from_other_fetch", "tdx.binds_nonce", ("fail", "nonce_mismatch")),
        ("other_model_only", "gpu.evidence", ("indeterminate", "no_gpu_evidence")),
        ("model_without_gpus", "gpu.evidence", ("indeterminate", "no_gpu_evidence")),
        ("gpus_moved_to_gateway", "gpu.evidence", ("indeterminate", "no_gpu_evidence")),
        ("one_gpu_posing_as_two", "gpu.evidence", ("fail", "gpu_duplicate_evidence")),
        ("model_of_another_app", "tdx.app", ("fail", "app_id_not_allowed")),
        ("extra_model_of_another_app", "tdx.app", ("fail", "app_id_not_allowed")),
        ("nras_about_other_gpus", "gpu.nras", ("fail", "nras_device_mismatch")),
        ("signature_kind_provider_tee", "report.signer", ("fail", "signer_not_attested")),
    ],
)
def test_a_forged_gateway_hop_is_never_a_pass(
    offline: Offline, near: Forge, case: str, check_id: str, outcome: tuple[str, str]
) -> None:
    bundle, policy = _near_case(near, case)
    v = offline.verdict(bundle, policy)
    assert str(v.status) != "pass" and checks(v)[check_id] == outcome, checks(v)


def test_a_model_attestation_for_another_model_next_to_the_requested_one_is_ignored(
    offline: Offline, near: Forge
) -> None:
    n = nonce()
    report = near.report(n, algo="ed25519")
    report["model_attestations"].append({**copy.deepcopy(report["model_attestations"][0]), "model_name": "cheap/x"})
    v = offline.verdict(near.bundle(report, n, signer="gateway", text_model=MODEL), strict_policy(near.world))
    assert str(v.status) == "pass" and v.attestation.hops == ("$.model_attestations[0]",), checks(v)


# ------------------------------------------------------------------ attacks correctly refused: flat reports


def test_a_genuine_attestation_relabelled_with_a_rogue_signer_fails_report_data_binding(
    offline: Offline, flat: Forge
) -> None:
    n = nonce()
    report = flat.report(n)
    for entry in (report, *report["all_attestations"]):
        entry["signing_address"] = flat.signer("rogue").address
    v = offline.verdict(flat.bundle(report, n, signer="rogue"), strict_policy(flat.world))
    assert checks(v)["tdx.binds_signer"] == ("fail", "report_data_signer_mismatch") and str(v.status) == "fail"
    assert tiers(v)["instance-identity"] == "contraindicated"


def test_another_apps_attestation_for_the_same_signer_next_to_the_genuine_one_fails(
    offline: Offline, flat: Forge, cheap: Forge
) -> None:
    # the cheap app's quote is made to bind the same key and nonce (a prover with its own genuine TD can)
    n = nonce()
    report = flat.report(n)
    foreign = cheap.report(n)
    report["all_attestations"].append({k: v for k, v in foreign.items() if k != "all_attestations"})
    payloads = [report["nvidia_payload"], foreign["nvidia_payload"]]
    v = offline.verdict(flat.bundle(report, n, signer="ecdsa", nras_payloads=payloads), strict_policy(flat.world))
    assert checks(v)["tdx.app"] == ("fail", "app_id_not_allowed") and str(v.status) == "fail"


def test_a_mixed_report_with_an_attestation_from_another_fetch_fails_nonce_binding(
    offline: Offline, flat: Forge
) -> None:
    n = nonce()
    report = flat.report(n)
    stale = flat.report(nonce())
    report["all_attestations"] = [{k: v for k, v in stale.items() if k != "all_attestations"}]
    v = offline.verdict(
        flat.bundle(report, n, signer="ecdsa", nras_payloads=[report["nvidia_payload"]] * 2), strict_policy(flat.world)
    )
    assert checks(v)["tdx.binds_nonce"] == ("fail", "nonce_mismatch") and str(v.status) == "fail"


def test_a_supplied_nonce_never_passes_freshness(offline: Offline, flat: Forge) -> None:
    n = nonce()
    bundle = flat.bundle(flat.report(n), n, signer="ecdsa")
    v = offline.verdict(
        replace(bundle, meta=replace(bundle.meta, nonce_origin=NonceOrigin.SUPPLIED)), strict_policy(flat.world)
    )
    assert checks(v)["nonce.fresh"] == ("indeterminate", "nonce_not_minted") and str(v.status) == "indeterminate"


def test_an_attestation_of_another_app_under_model_pins_fails_even_with_an_aliased_model(
    offline: Offline, cheap: Forge
) -> None:
    # the policy makes "cheap/llama-8b" an alias of the requested model; the app id pin stays the requested model's
    policy = strict_policy(SimulatorWorld(), f'[models]\n"{MODEL}" = ["cheap/llama-8b"]\n')
    n = nonce()
    v = offline.verdict(cheap.bundle(cheap.report(n), n, signer="ecdsa", text_model="cheap/llama-8b"), policy)
    assert checks(v)["model.binding"] == ("pass", None)
    assert checks(v)["tdx.app"] == ("fail", "app_id_not_allowed") and str(v.status) == "fail"


def test_an_attestation_cited_for_another_requested_model_has_no_app_pin(offline: Offline, flat: Forge) -> None:
    # the same genuine evidence requested as a model the policy does not pin is not bound to it
    n = nonce()
    v = offline.verdict(flat.bundle(flat.report(n), n, signer="ecdsa", model="sim/other"), strict_policy(flat.world))
    assert checks(v)["tdx.app"] == ("fail", "app_id_not_allowed") and str(v.status) == "fail"


# ------------------------------------------------------------------ malformed prover input: never a traceback

_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=40),
    st.just("0x" + "ab" * 32),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if prefix:
        yield prefix
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        yield from _paths(value, (*prefix, key))


def _expanded(report: dict[str, Any]) -> dict[str, Any]:
    """The report with its JSON-text fields (event log, nvidia_payload, tcb_info) as objects, which parsers accept
    too."""
    out = copy.deepcopy(report)
    entries = [
        out,
        out.get("gateway_attestation") or {},
        *out.get("model_attestations", []),
        *out.get("all_attestations", []),
    ]
    for e in entries:
        for key in ("event_log", "nvidia_payload"):
            if isinstance(e.get(key), str):
                e[key] = json.loads(e[key])
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fmt=st.sampled_from(["phala_flat", "near_two_layer"]), data=st.data())
def test_arbitrary_changes_to_the_report_structure_are_judged_never_an_internal_error(
    offline: Offline, flat: Forge, near: Forge, fmt: str, data: st.DataObject, caplog: pytest.LogCaptureFixture
) -> None:
    forge = flat if fmt == "phala_flat" else near
    n = nonce()
    report = _expanded(forge.report(n, algo="ed25519"))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        path = data.draw(st.sampled_from(sorted(_paths(report), key=repr)))
        target = report
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = data.draw(_VALUES)
    bundle = forge.bundle(report, n, signer="ed25519", nras_payloads=[])
    with caplog.at_level(logging.ERROR):
        v = offline.verdict(bundle, strict_policy(forge.world))
    assert not [c.id for c in v.checks if c.reason == "internal_error"], caplog.text
    assert str(v.status) != "pass"  # no NRAS answer in the bundle: never a pass whatever else holds
