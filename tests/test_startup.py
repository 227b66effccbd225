"""Start-up: what the CLI and the core modules import, read from ``python -X importtime`` of fresh interpreters.

Timings are measured by ``benchmarks/bench_startup.py``; these tests pin the import graph that makes them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VERIFIER = str(Path(sys.executable).with_name("verifier"))
HEAVY = {"eth_account", "coincurve", "cryptography", "aiohttp", "dcap_qvl"}


def imported_packages(*argv: str) -> set[str]:
    """Top-level packages a fresh ``python -X importtime ARGV`` imported (it must exit 0)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *argv], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert done.returncode == 0, done.stderr[-800:]
    names = [line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert "verifier" in {n.split(".")[0] for n in names}, done.stderr[-800:]  # the probe saw the imports
    return {n.split(".")[0] for n in names}


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_version_and_help_import_no_crypto_stack_no_aiohttp_no_dcap_qvl(flag: str) -> None:
    assert imported_packages(VERIFIER, flag) & HEAVY == set()


def test_the_probe_does_see_the_crypto_stack_where_a_command_needs_it() -> None:
    assert {"coincurve", "cryptography"} <= imported_packages(VERIFIER, "verify-bundle", "--help")


def test_no_production_module_imports_eth_account() -> None:
    code = "import verifier.engine.evaluate, verifier.web, verifier.cli.service, verifier.cli.offline, verifier.demo"
    assert imported_packages("-c", code) & {"eth_account", "eth_keys", "eth_utils", "py_ecc"} == set()


def test_the_simulator_signs_without_eth_account() -> None:
    code = (
        "from verifier.simulator.gateway import SimulatedGateway, SimulatorConfig; "
        "from verifier.simulator import SimulatorWorld"
    )
    assert "eth_account" not in imported_packages("-c", code)


def test_pycryptodome_is_imported_only_when_a_keccak_is_computed() -> None:
    assert "Crypto" not in imported_packages(VERIFIER, "policy", "check", "policies/default.toml")
    code = (
        "from verifier.verify.signature import eip191_digest\n"
        "assert eip191_digest(b'') == bytes.fromhex('5f35dce98ba4fba25530a026ed80b2cecdaa31091ba4958b99b52ea1d068adad')"
    )
    assert "Crypto" in imported_packages("-c", code)
