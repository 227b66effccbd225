"""Policy files: validated once at load, every error names the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from verifier.appraise.catalog import CHECK_IDS
from verifier.appraise.policy import KEYS, default_policy, load_policy, parse_policy
from verifier.core.errors import ConfigError
from verifier.core.model import Severity

ROOT = Path(__file__).resolve().parent.parent


def test_default_policy_loads_with_strict_production_defaults() -> None:
    p = default_policy()
    assert p.id == "default"
    assert p.tdx.allowed_tcb_statuses == frozenset({"UpToDate"})
    assert p.tdx.allow_debug is False
    assert p.gpu.nras_required is True
    assert p.max_attestation_age == 0
    assert set(p.severities) == CHECK_IDS
    assert p.severity("tdx.quote") is Severity.REQUIRED


def test_every_policy_file_in_the_repo_is_valid() -> None:
    files = sorted((ROOT / "policies").glob("*.toml"))
    assert files
    for f in files:
        load_policy(f)


def test_policy_hash_is_sha256_of_the_exact_bytes() -> None:
    a = parse_policy(b'[policy]\nid = "x"\n', source="a.toml")
    b = parse_policy(b'[policy]\nid = "x"\n\n', source="b.toml")
    assert a.id == b.id and a.sha256 != b.sha256


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[tdx]\nallowed_tcb_statuse = ["UpToDate"]\n', "unknown key 'tdx.allowed_tcb_statuse'"),
        ('[tdx]\nallowed_tcb_statuses = ["Revoked"]\n', "'Revoked' is not an allowable"),
        ('[tdx]\nallowed_tcb_statuses = ["SWHardeningNeeded"]\n', "needs tdx.advisory_allowlist"),
        ("[tdx]\nallowed_tcb_statuses = []\n", "must not be empty"),
        ('[tdx]\nallowed_mrtd = ["zz"]\n', "tdx.allowed_mrtd: 'zz' is not hex"),
        ('[tdx]\nallowed_mrtd = ["00"]\n', "tdx.allowed_mrtd: got 1 bytes, expected 48"),
        ('[tdx.app_ids]\n"m" = ["0011"]\n', "tdx.app_ids.m: got 2 bytes, expected 20"),
        ('[gpu]\nnras = "maybe"\n', "gpu.nras: got 'maybe'"),
        ('[checks]\n"tdx.quote" = "sometimes"\n', "checks.tdx.quote: got 'sometimes'"),
        ("[attestation]\nmax_attestation_age = -1\n", "expected a number >= 0"),
        ('[attestation]\nmax_attestation_age = "1"\n', "attestation.max_attestation_age: got '1', expected int"),
        ("x = 1\n", "top-level key 'x' must be a [section]"),
        ("[tdx\n", "not valid TOML"),
    ],
)
def test_bad_policy_is_a_config_error_naming_key_and_file(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_policy(text.encode(), source="bad.toml")
    assert needle in err.value.message
    assert "bad.toml" in err.value.message


def test_sw_hardening_allowed_only_with_an_advisory_allowlist() -> None:
    p = parse_policy(
        b'[tdx]\nallowed_tcb_statuses = ["UpToDate", "SWHardeningNeeded"]\nadvisory_allowlist = ["INTEL-SA-00615"]\n',
        source="t",
    )
    assert p.tdx.advisory_allowlist == frozenset({"INTEL-SA-00615"})


def test_local_gpu_mode_turns_the_nras_check_off() -> None:
    p = parse_policy(b'[gpu]\nnras = "local"\n', source="t")
    assert p.severity("gpu.nras") is Severity.OFF


def test_missing_policy_file_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot read policy file"):
        load_policy("/nonexistent/policy.toml")


def test_every_key_has_documentation_text() -> None:
    assert all(k.doc for k in KEYS.values())


@pytest.mark.parametrize(
    ("check_id", "foundation"),
    [
        ("tdx.binds_nonce", "tdx.quote"),
        ("tdx.binds_signer", "tdx.quote"),
        ("tdx.debug", "tdx.quote"),
        ("gpu.nonce", "gpu.evidence"),
        ("response.hash", "signature.valid"),
    ],
)
def test_a_required_check_over_unverified_evidence_is_refused(check_id: str, foundation: str) -> None:
    # review finding: tdx.quote advisory + bindings required let a forged quote with the right report_data pass
    text = f'[checks]\n"{foundation}" = "advisory"\n'.encode()
    if foundation == "tdx.quote":
        text += b'"tdx.tcb" = "advisory"\n"tdx.measurements" = "advisory"\n'
        others = ("tdx.binds_signer", "tdx.binds_nonce", "tdx.event_log", "tdx.app", "tdx.debug")
        text += "".join(f'"{c}" = "advisory"\n' for c in others if c != check_id).encode()
    elif foundation == "signature.valid":
        text += b'"request.hash" = "advisory"\n'
    with pytest.raises(ConfigError) as exc:
        parse_policy(text, source="weak.toml")
    assert f"checks.{check_id} is required but checks.{foundation} is advisory" in exc.value.message


def test_bindings_may_be_advisory_together_with_their_foundation() -> None:
    policy = parse_policy(
        b'[checks]\n"gpu.evidence" = "off"\n"gpu.nonce" = "advisory"\n"gpu.nras" = "off"\n', source="cpu-only.toml"
    )
    assert policy.severity("gpu.nonce") is Severity.ADVISORY


def test_app_id_allow_lists_are_keyed_by_model_case_insensitively() -> None:
    policy = parse_policy(b'[tdx.app_ids]\n"TEE/Gemma" = ["' + b"11" * 20 + b'"]\n', source="apps.toml")
    assert set(policy.tdx.app_ids) == {"tee/gemma"}


def test_a_relaxed_report_signer_is_refused_while_any_binding_check_is_required() -> None:
    # review finding: with report.signer advisory, a response signed by an unrelated key passed on a Chutes report
    with pytest.raises(ConfigError) as exc:
        parse_policy(b'[checks]\n"report.signer" = "advisory"\n', source="relaxed.toml")
    assert "is required but checks.report.signer is advisory" in exc.value.message


def _every_check_advisory_but(required: str, relaxed: str) -> bytes:
    """``required`` and what it rests on are required, ``relaxed`` is off, everything else advisory."""
    from verifier.appraise.catalog import CHECKS, check_spec

    keep, todo = set(), [required]
    while todo:
        cid = todo.pop()
        if cid != relaxed and cid not in keep:
            keep.add(cid)
            todo += check_spec(cid).foundations
    lines = [f'"{c.id}" = "{"required" if c.id in keep else "advisory"}"' for c in CHECKS if c.id != relaxed]
    return ("[checks]\n" + "\n".join(lines) + f'\n"{relaxed}" = "off"\n').encode()


def test_the_foundation_rule_holds_for_every_declared_dependency_of_the_registry() -> None:
    from verifier.appraise.catalog import CHECKS

    pairs = [(c.id, dep) for c in CHECKS for dep in c.foundations]
    assert ("tdx.binds_signer", "report.signer") in pairs and ("gpu.nonce", "gpu.evidence") in pairs
    for check_id, dep in pairs:
        with pytest.raises(ConfigError) as exc:
            parse_policy(_every_check_advisory_but(check_id, dep), source="weak.toml")
        assert f"is required but checks.{dep} is off" in exc.value.message, (check_id, dep)


# ---------------------------------------------------------------- fuzzing regressions: wrong types, nesting, formats


@pytest.mark.parametrize("value", ['["required"]', '{a = "required"}', "1", "true", "1979-05-27"])
def test_a_severity_of_the_wrong_type_is_a_config_error_naming_the_key(value: str) -> None:
    # fuzzing found: a list severity raised TypeError (unhashable) from the membership test
    expected = r"bad\.toml: checks\.tdx\.quote: got .*, expected required \| advisory \| off"
    with pytest.raises(ConfigError, match=expected):
        parse_policy(f'[checks]\n"tdx.quote" = {value}\n'.encode(), source="bad.toml")


@pytest.mark.parametrize(
    ("key", "value", "parsed"),
    [
        ("allowed_mrtd", "[" * 5000 + "]" * 5000, False),
        ("app_ids", "{a = " * 3000 + "1" + "}" * 3000, False),
        ("allowed_mrtd", "[" * 300 + "]" * 300, True),  # tomllib manages this depth: the coercion names the key
    ],
)
def test_a_deeply_nested_value_is_a_config_error_naming_the_key_not_a_recursion_error(
    key: str, value: str, parsed: bool
) -> None:
    text = f'[policy]\nid = "deep"\n\n[tdx]\nallow_debug = false\n{key} = {value}\n'
    with pytest.raises(ConfigError) as err:
        parse_policy(text.encode(), source="deep.toml")
    message = err.value.message
    assert message.startswith("deep.toml: ") and f"tdx.{key}" in message
    assert parsed or f"line 6 (key 'tdx.{key}') nests too deeply" in message


def test_a_deeply_nested_value_spread_over_lines_names_its_key() -> None:
    text = '[gpu]\nnras = "local"\nallowed_drivers = ' + "[\n" * 3000 + "]\n" * 3000
    with pytest.raises(ConfigError, match=r"key 'gpu\.allowed_drivers'"):
        parse_policy(text.encode(), source="deep.toml")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("min_driver", "abc"),
        ("min_driver", "570..1"),
        ("min_driver", "570.172.08 "),
        ("min_driver", "5a0.1"),
        ("min_driver", "\u0663\u0665"),  # Arabic-Indic digits: int() would take them, the version form does not
        ("min_vbios", "xyz"),
        ("min_vbios", "96.00.D0.00.0G"),
        ("min_vbios", ".96"),
    ],
)
def test_a_minimum_gpu_version_that_is_not_a_dotted_version_is_refused_at_load(key: str, value: str) -> None:
    # fuzzing found: "abc" loaded, then failed every GPU verification as internal_error
    with pytest.raises(ConfigError, match=rf"bad\.toml: gpu\.{key}: got .*, expected a dotted"):
        parse_policy(f'[gpu]\n{key} = "{value}"\n'.encode(), source="bad.toml")


def test_dotted_minimum_gpu_versions_load() -> None:
    policy = parse_policy(b'[gpu]\nmin_driver = "570.172.08"\nmin_vbios = "96.00.d0.00.03"\n', source="ok.toml")
    assert (policy.gpu.min_driver, policy.gpu.min_vbios) == ("570.172.08", "96.00.d0.00.03")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[attestation]\nmax_attestation_age = 1099511627777\n", "attestation.max_attestation_age: got 1099511627777"),
        ("[gpu]\nnras_leeway = -1099511627777\n", "gpu.nras_leeway: got -1099511627777"),
        ("[gpu]\nexpected_count = " + "9" * 5000 + "\n", "not valid TOML"),
    ],
)
def test_integers_out_of_range_are_refused_at_load(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_policy(text.encode(), source="big.toml")
    assert needle in err.value.message


def test_an_oversized_policy_file_is_refused() -> None:
    with pytest.raises(ConfigError, match="a policy file is at most"):
        parse_policy(b"# " + b"x" * (1024 * 1024) + b"\n", source="huge.toml")


def test_a_wrong_type_message_describes_containers_without_repr() -> None:
    with pytest.raises(ConfigError, match=r"policy\.id: got an array, expected str"):
        parse_policy(b"[policy]\nid = [[[1]]]\n", source="t.toml")
