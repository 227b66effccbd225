"""The catalogue of check ids (from the registry) and reason codes: stable public names, documented in README.

Never rename an id or a code; add new ones. ``tests/test_docs.py`` fails when one is undocumented.
"""

from __future__ import annotations

from verifier.appraise import checks as _checks  # noqa: F401  (importing the package registers every check)
from verifier.appraise.registry import REGISTRY, CheckSpec

CHECKS: tuple[CheckSpec, ...] = tuple(REGISTRY.values())  # evaluation order: every check after what it needs
CHECK_IDS: frozenset[str] = frozenset(REGISTRY)
REUSE_REQUIRES: tuple[str, ...] = tuple(c.id for c in CHECKS if c.reuse)


def check_spec(check_id: str) -> CheckSpec:
    return REGISTRY[check_id]


# Reason codes: one stable snake_case name per way a check can end other than `pass`.
REASONS: dict[str, str] = {
    # generic
    "not_in_bundle": "the evidence needed for this check is not in the bundle",
    "not_applicable": "the check does not apply to this report format",
    "policy_off": "the policy turns this check off",
    "not_configured": "the policy configures nothing for this check to compare against (e.g. no allow-lists)",
    "blocked": "an earlier check this one depends on did not pass",
    "malformed_evidence": "evidence does not parse or is structurally invalid",
    "internal_error": "a bug in the verifier; never a pass",
    "check_failed": "the check's condition is false",
    "indeterminate": "the verifier could not decide",
    # hashes and signature
    "hash_mismatch": "sha256 of the exact bytes differs from the signed hash",
    "hash_match_reserialized": "only a known producer re-serialization (not the exact bytes) matches the signed hash",
    "signature_invalid": "the signature does not verify for signing_address",
    "signer_mismatch": "the signature recovers to another address than signing_address",
    "unsupported_signing_algo": "the signing algorithm is neither ecdsa nor ed25519",
    "signed_text_malformed": "the signed text is not req_hash:resp_hash or model:req_hash:resp_hash",
    "model_mismatch": "the signed or attested model differs from the requested model",
    # report and binding
    "signer_not_attested": "no attestation in the report is for this signer and algo (and model)",
    "no_signer": "no signing address is known for this verification",
    "report_data_signer_mismatch": "report_data (from the quote bytes) does not bind the signing key",
    "nonce_mismatch": "report_data (from the quote bytes) does not bind our nonce",
    "no_nonce": "no expected nonce is known, so binding cannot be shown",
    "nonce_not_minted": "the nonce was supplied, not minted by this verifier: freshness is not proven",
    "reused_attestation": "the verdict cites an earlier attestation within the policy's reuse window",
    # event log / app
    "event_log_mismatch": "the replayed RTMR differs from the quote's RTMR",
    "event_digest_mismatch": "an RTMR3 event's supplied digest differs from its recomputed digest",
    "compose_hash_mismatch": "app_compose, compose_hash, RTMR3 compose-hash and mr_config_id disagree",
    "compose_hash_not_allowed": "the compose hash is not in the policy allow-list",
    "app_id_not_allowed": "the app id is not in the policy allow-list for this model",
    "measurement_not_allowed": "a measurement (MRTD, RTMRn, MRSEAM, OS image) is not in the policy allow-list",
    "debug_td": "the TD's DEBUG attribute is set: the host can read its memory",
    # dcap / collateral
    "quote_malformed": "dcap-qvl could not decode the quote",
    "quote_signature_invalid": "the quote's ECDSA signature (ISV enclave report) is invalid",
    "qe_report_invalid": "the QE report signature or QE report hash is invalid",
    "unknown_qe_vendor": "the quote's QE vendor id is not Intel's",
    "cert_chain_invalid": "the PCK certificate chain does not verify to the trusted root",
    "cert_revoked": "a certificate in the PCK chain is revoked",
    "crl_invalid": "a CRL's signature or encoding is invalid",
    "crl_expired": "a CRL is past its nextUpdate at the verification time",
    "collateral_expired": "TCB info or QE identity is outside its validity at the verification time",
    "collateral_not_yet_valid": "TCB info or QE identity was issued after the verification time",
    "collateral_invalid": "TCB info or QE identity signature or content is invalid",
    "collateral_too_old": "the collateral is older than the policy's max_collateral_age",
    "collateral_unavailable": "the collateral could not be fetched (timeout, 5xx, 429, 404, unparsable)",
    "fmspc_mismatch": "the TCB info is for another FMSPC than the PCK certificate",
    "qe_identity_mismatch": "the QE does not match the QE identity",
    "no_matching_tcb_level": "no TCB level in the TCB info matches the platform",
    "tcb_revoked": "the platform TCB is revoked",
    "tcb_status_not_allowed": "the TCB status is not allowed by policy",
    "advisory_not_allowed": "an advisory id is rejected by (or not in the allow-list of) the policy",
    "tcb_eval_too_old": "the TCB evaluation data number is below the policy minimum",
    "dcap_worker_failed": "the dcap-qvl worker crashed or answered garbage",
    "dcap_worker_timeout": "the dcap-qvl worker did not answer in time",
    "dcap_error": "dcap-qvl rejected the quote for another reason (its text is in the message)",
    # gpu
    "gpu_nonce_mismatch": "a GPU's SPDM request nonce or payload nonce differs from the expected nonce",
    "no_gpu_evidence": "the report carries no GPU evidence",
    "gpu_count_mismatch": "the number of GPUs differs from the policy's expected count",
    "gpu_cert_chain_invalid": "a GPU's certificate chain does not verify to the pinned NVIDIA device root",
    "gpu_cert_expired": "a GPU certificate is outside its validity at the verification time",
    "gpu_signature_invalid": "a GPU's SPDM measurement signature does not verify",
    "gpu_fwid_mismatch": "the FWID in the SPDM opaque data differs from the leaf certificate's",
    "gpu_model_not_allowed": "the GPU hardware model is not allowed by policy",
    "gpu_driver_not_allowed": "the GPU driver version is not allowed by policy",
    "gpu_vbios_not_allowed": "the GPU VBIOS version is not allowed by policy",
    "nras_token_invalid": "an NRAS token's signature, key or certificate chain is invalid",
    "nras_token_expired": "an NRAS token, or the certificate that signed it, is expired (or not yet valid) at the "
    "verification time",
    "nras_nonce_mismatch": "the NRAS token's eat_nonce differs from our nonce",
    "nras_submod_mismatch": "the NRAS overall token's submods do not match the device tokens",
    "nras_result_false": "NRAS says the attestation failed (its error details are in the message)",
    "nras_claim_failed": "a per-GPU NRAS claim (measres, secboot, dbgstat) is not acceptable",
    "nras_unavailable": "NRAS could not be reached or answered garbage (timeout, 5xx, 429)",
    "nras_jwks_unavailable": "no NRAS JWKS key is available for the token's kid",
    # network / upstream
    "upstream_unavailable": "an upstream could not be reached (connection error, 5xx)",
    "upstream_timeout": "an upstream did not answer in time",
    "upstream_rate_limited": "an upstream answered 429",
    "upstream_rejected": "an upstream answered another 4xx than the ones named here (e.g. 400, 401, 403)",
    "upstream_garbled": "an upstream answered 2xx with a body that is not the expected JSON",
    "signature_unavailable": "the gateway has no signature for this chat id (404: not found or expired)",
    "report_unavailable": "the attestation report could not be fetched",
    # verdict integrity and software identity (engine)
    "model_not_requested": "the bundle names no requested model, so nothing can bind one",
    "identity_not_pinned": "the software identity (app identity or boot chain) is not pinned for the model",
    "boot_chain_not_allowed": "MRTD/RTMR0-2 (and MRSEAM) match none of the pinned boot chains",
    "os_image_mismatch": "the report's vm_config OS image hash differs from the measured os-image-hash",
    "dev_os_image": "the dstack OS image is a dev image, which gives the operator access to the CVM",
    # dstack event log: RTMR3 boot identity and GPU boot events (docs/event-log.md)
    "event_log_rtmr3_not_runtime": "an RTMR3 entry is not a dstack runtime event (type 0x08000001), so its digest "
    "cannot be recomputed (e.g. a relabelled app-id or system-ready)",
    "event_log_no_system_ready": "the RTMR3 log has no system-ready event: dstack's boot events cannot be told from "
    "the app's, so it supplies no identity",
    "event_log_duplicate_boot_event": "a dstack identity event (app-id, compose-hash, instance-id, key-provider, "
    "os-image-hash, ...) occurs more than once before system-ready",
    "event_log_missing_boot_event": "app-id, compose-hash, instance-id or key-provider is missing before system-ready",
    "gpu_boot_event_duplicate": "gpu-policy-hash or gpu-attestation occurs more than once before system-ready",
    "gpu_boot_event_out_of_order": "gpu-policy-hash does not directly follow compose-hash (and its init-script-hash "
    "events), or gpu-attestation does not directly follow gpu-policy-hash",
    "gpu_policy_hash_mismatch": "the RTMR3 gpu-policy-hash differs from SHA-256(JCS(requirements.gpu_policy)) of "
    "app_compose",
    "gpu_boot_attestation_missing": "GPUs are expected but the log has no gpu-attestation before system-ready",
    "gpu_boot_devices_mismatch": "the gpu-attestation device count is 0 or differs from the expected GPU count",
    "gpu_boot_cc_mode_off": "the gpu-attestation says the GPUs' confidential-computing mode was not on",
    "gpu_boot_devtools_on": "the gpu-attestation says NVIDIA DevTools mode was on (GPU memory not confidential)",
    "gpu_boot_policy_relaxed": "the measured GPU policy waives a dstack GPU check (allow_devtools, allow_debug, "
    "allow_insecure_boot or attest_gpu false)",
    "gpu_boot_policy_unknown": "the boot measured a non-default GPU policy and no app_compose shows what it allows",
    # gpu device identity and NRAS pairing (h-gpu)
    "gpu_duplicate_evidence": "two GPU entries of one attestation name the same device (ueid, leaf or device "
    "certificate)",
    "nras_device_mismatch": "an NRAS per-GPU token names another device (ueid, hwmodel) than the evidence entry it "
    "pairs with",
    # the verifying proxy: the model that served the completion (issue 16)
    "model_fallback": "the completion was served by another model than the one requested (x-model-used, fallback "
    "headers or the response's model), and the policy's [models] table does not alias it",
    # TLS channel binding (tls.binds_peer; docs/protocol.md §12)
    "no_tls": "the connection that served the completion was plain http: there is no TLS peer to bind",
    "not_tls_layout": "the quote's report_data is not in the TLS-fingerprint layout, so it binds no TLS key",
    "no_peer_certificate": "no peer certificate was observed on the https connection that served the completion",
    "tls_peer_mismatch_replica": "the quote binds the TLS key of another connection of this exchange, not the one "
    "that served the completion: the report came from another replica behind a load balancer",
    "tls_peer_not_attested": "the quote binds a TLS key that no observed connection presented: TLS is not "
    "terminated by the attested TD",
    "tls_gateway_not_verified": "NEAR two-layer report signed by a model key: the gateway that terminates TLS is "
    "not among the attestations verified for this signer",
    "observation_not_upgraded": "a re-appraisal may not turn an observer check's recorded non-pass into a pass "
    "(its evidence, tls.json or headers.json, is unauthenticated)",
}
