"""`verifier verify-bundle --trust simulator` on simulator-made bundles: the GPU wrong passes that are closed.

Each bundle is a Phala-flat report (TDX quote binding the signer and the nonce, event log, an
``nvidia_payload``), its collateral and an NRAS response, all from one default-seed world, so every
other check passes; each test has a control bundle that differs only in the knob and passes the GPU checks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from verifier.cli import main
from verifier.evidence.bundle import Bundle, BundleMeta
from verifier.simulator import SimulatorWorld
from verifier.simulator.gateway import SimulatedGateway

NOW = 1_790_000_000  # 2026-09-21, inside the simulator collateral issued for it
NONCE = bytes.fromhex("5e" * 32)
EXIT = {"pass": 0, "fail": 2, "indeterminate": 3}
WORLD = SimulatorWorld()  # the default seed: the `simulator` trust profile pins its roots


def _bundle(*, gpus: int, repeat: bool = False, nras_other_gpus: bool = False) -> Bundle:
    signer = SimulatedGateway(WORLD).signer("ecdsa")
    report_data = bytes.fromhex(signer.address.removeprefix("0x")).ljust(32, b"\0") + NONCE
    payload = WORLD.gpu_payload(NONCE, gpus, repeat=repeat)
    flat: dict[str, Any] = {
        "signing_address": signer.address,
        "signing_algo": "ecdsa",
        "signing_public_key": signer.public_key,
        "request_nonce": NONCE.hex(),
        "intel_quote": WORLD.tdx_quote(report_data).hex(),
        "event_log": json.dumps(WORLD.event_log),
        "info": WORLD.info(),
        "nvidia_payload": payload,
    }
    report = {**flat, "quote": flat["intel_quote"], "all_attestations": [dict(flat)]}
    nras = WORLD.nras_response(payload, now=NOW - 5, other_gpus=nras_other_gpus)
    fmspc = WORLD.platform.fmspc.hex().upper()
    return Bundle(
        meta=BundleMeta.from_json(
            {
                "nonce": NONCE.hex(),
                "nonce_origin": "supplied",
                "signing_address": signer.address,
                "signing_algo": "ecdsa",
                "captured_at": NOW,
            }
        ),
        report=json.dumps(report).encode(),
        collateral={f"tdx-{fmspc}.json": WORLD.collateral_json(NOW).encode()},
        nras={"response.json": json.dumps(nras).encode(), "jwks.json": json.dumps(WORLD.jwks()).encode()},
    )


def _verify(
    tmp_path: Path, bundle: Bundle, name: str, *args: str
) -> tuple[dict[str, Any], dict[str, tuple[str, str | None]]]:
    root = tmp_path / name
    for rel, body in bundle.files().items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(body)
    result = CliRunner().invoke(
        main, ["verify-bundle", str(root), "--json", "--trust", "simulator", "--at", str(NOW), *args]
    )
    verdict = json.loads(result.output)
    assert result.exit_code == EXIT[verdict["status"]], result.output[-2000:]
    return verdict, {c["id"]: (c["status"], c["reason"]) for c in verdict["checks"]}


def _message(verdict: dict[str, Any], check: str) -> str:
    return next(c["message"] for c in verdict["checks"] if c["id"] == check)


def test_one_gpu_repeated_eight_times_no_longer_satisfies_a_policy_expecting_eight(tmp_path: Path) -> None:
    policy = tmp_path / "eight.toml"
    policy.write_text('[policy]\nid = "eight-gpus"\n[gpu]\nexpected_count = 8\n')
    _, control = _verify(tmp_path, _bundle(gpus=8), "eight-distinct", "--policy", str(policy))
    assert {c: control[c] for c in ("tdx.quote", "gpu.nonce", "gpu.evidence", "gpu.nras")} == {
        c: ("pass", None) for c in ("tdx.quote", "gpu.nonce", "gpu.evidence", "gpu.nras")
    }
    verdict, checks = _verify(tmp_path, _bundle(gpus=8, repeat=True), "one-repeated", "--policy", str(policy))
    assert checks["gpu.evidence"] == ("fail", "gpu_duplicate_evidence")
    # what rests on the device evidence is not judged once it failed (every entry was a genuine answer to our nonce)
    assert checks["gpu.nonce"] == checks["gpu.nras"] == ("skipped", "blocked")
    assert verdict["status"] == "fail"
    assert "GPU-0, GPU-1, GPU-2, GPU-3, GPU-4, GPU-5, GPU-6, GPU-7" in _message(verdict, "gpu.evidence")


def test_an_nras_token_for_other_gpus_no_longer_vouches_for_the_evidence(tmp_path: Path) -> None:
    _, control = _verify(tmp_path, _bundle(gpus=2), "own-tokens")
    assert (control["gpu.evidence"], control["gpu.nras"]) == (("pass", None), ("pass", None))
    verdict, checks = _verify(tmp_path, _bundle(gpus=2, nras_other_gpus=True), "other-tokens")
    assert checks["gpu.evidence"] == ("pass", None)  # the evidence itself is genuine
    assert checks["gpu.nras"] == ("fail", "nras_device_mismatch")
    assert verdict["status"] == "fail"
    assert str(WORLD.gpu(2).leaf.serial_number) in _message(verdict, "gpu.nras")  # NRAS's GPU-0 token is about GPU 2
