"""TLS channel binding: the attested TLS key is the live peer's of the connection that served the completion.

In the TLS-fingerprint report_data layout (docs/protocol.md §4) the quote binds ``sha256(address || SPKI hash)``:
the TD holds the TLS key whose SubjectPublicKeyInfo hashes to that fingerprint. This check compares the live peer
this verifier saw (``tls.json``, §12) with what the VERIFIED quote bytes bind — it recomputes
``sha256(address || observed SPKI hash)`` against report_data[0:32]; the report's JSON fingerprint only says whether
the layout is in use (it must be the preimage the quote binds, which ``tdx.binds_signer`` established).

Whose key: the TD that terminates our TLS connection — the signer's attestation, or for a NEAR two-layer report the
gateway attestation (the model attestations name their own node's key, which our connection never sees).

Outcomes: ``pass`` when the served connection's peer is the attested key; ``indeterminate``
``tls_peer_mismatch_replica`` when the attested key is the peer of ANOTHER connection of this exchange (the report
came from another replica behind a load balancer: nothing false, but the completion's channel is not bound);
``fail`` ``tls_peer_not_attested`` when it is no observed peer's; skipped when there is nothing to bind (no
tls.json ``not_in_bundle``, plain http ``no_tls``, a report not in the TLS layout ``not_tls_layout``).
"""

from __future__ import annotations

from functools import partial

from verifier.appraise.registry import Appraisal, Passed, check, each
from verifier.core.errors import CheckFailed, Indeterminate, Skip
from verifier.core.model import Severity
from verifier.evidence.report import ReportFormat
from verifier.evidence.report_data import binds_tls_key
from verifier.evidence.tls_observation import PeerObservation, TlsObservations
from verifier.verify.results import Facts, TdxFacts

RECORDED = "recorded in the bundle's tls.json: unauthenticated observer data, only as trustworthy as its recorder"


@check(
    "tls.binds_peer",
    "the quote binds the TLS key of the live peer of the connection that served the completion (TLS layout)",
    needs=("tdx.binds_signer", "tdx.binds_nonce"),
    rests_on=("report.signer", "nonce.fresh"),
    severity=Severity.ADVISORY,
    observed=True,
)
def tls_binds_peer(f: Facts, a: Appraisal) -> Passed:
    observed = f.tls.get()  # Skip not_in_bundle without tls.json; EvidenceError for a malformed one
    served = observed.served_by()
    if served is None:
        raise Skip("tls.json records no connection to the gateway", reason="not_in_bundle")
    if served.scheme != "https":
        raise Skip(
            f"the {served.role} connection {served.connection} was plain http: there is no TLS peer to bind",
            reason="no_tls",
        )
    how = "observed live" if f.tls_live else RECORDED
    signer, algo = f.selection.signer, f.selection.algo or "ecdsa"
    if signer is None:
        raise Indeterminate("no signer known", reason="no_signer")

    def rule(t: TdxFacts) -> str:
        att, rd = t.attestation, t.quote.get().report.report_data
        attested = att.tls_cert_fingerprint
        if attested is None or not binds_tls_key(rd, signing_algo=algo, signing_address=signer, spki_sha256=attested):
            named = " (the report names a tls_cert_fingerprint that its quote does not bind)" if attested else ""
            raise Skip(f"report_data is not in the TLS-fingerprint layout{named}", reason="not_tls_layout")
        return _compare(rd, signer, algo, served, observed, attested.lower().removeprefix("0x"))

    passed = each([(t.attestation.path, partial(rule, t)) for t in _terminators(f)])
    same = observed.get("report")
    return Passed(
        f"{passed.message} ({how})",
        {
            "served_by": served.role,
            "connection": served.connection,
            "peer_spki_sha256": served.peer_spki_sha256,
            "observed": "live" if f.tls_live else "recorded",
            "report_on_same_connection": same is not None and same.connection == served.connection,
        },
    )


def _terminators(f: Facts) -> list[TdxFacts]:
    """The verified attestations of the TD that terminates our TLS connection."""
    report = f.selection.report.value
    if report is None or report.format is ReportFormat.CHUTES:
        raise Skip("no signer attestation to bind a TLS key to", reason="not_applicable")
    chosen = {a.path for a in f.selection.attestations.value or ()}
    if report.format is ReportFormat.NEAR_TWO_LAYER:
        gateway = [t for t in f.tdx if t.attestation.role == "gateway" and t.attestation.path in chosen]
        if not gateway:
            raise Indeterminate(
                "NEAR two-layer report: the TLS peer is the gateway, and the gateway attestation is not the signer's "
                "(a model key signed), so its quote was not verified here; the channel is not bound",
                reason="tls_gateway_not_verified",
            )
        return gateway
    return [t for t in f.tdx if t.attestation.path in chosen]


def _compare(
    rd: bytes, signer: str, algo: str, served: PeerObservation, observed: TlsObservations, attested: str
) -> str:
    def bound(c: PeerObservation) -> bool:
        fp = c.peer_spki_sha256
        return fp is not None and binds_tls_key(rd, signing_algo=algo, signing_address=signer, spki_sha256=fp)

    where = f"{served.role} connection {served.connection} (peer {served.peer or '?'})"
    if served.peer_spki_sha256 is None:
        raise Indeterminate(f"no peer certificate was observed on the {where}", reason="no_peer_certificate")
    if bound(served):
        return f"the quote binds the TLS key of the {where}: SPKI sha256 {served.peer_spki_sha256}"
    details = {
        "expected": attested,
        "got": served.peer_spki_sha256,
        "connections": [
            {"role": c.role, "connection": c.connection, "peer": c.peer, "peer_spki_sha256": c.peer_spki_sha256}
            for c in observed.calls
        ],
    }
    others = sorted(observed.calls, key=lambda c: c.role != "report")  # the report's own connection first
    other = next((c for c in others if c.connection != served.connection and bound(c)), None)
    if other is not None:
        raise Indeterminate(
            f"the quote binds the TLS key of the {other.role} connection {other.connection} (peer "
            f"{other.peer or '?'}), not that of the {where}: the report came from another replica than the one that "
            "served the completion (one TLS key per replica behind a load balancer); the completion's channel is "
            "not bound",
            reason="tls_peer_mismatch_replica",
            details=details,
        )
    raise CheckFailed(
        f"the quote binds TLS key {attested}, which is the peer of no connection this exchange travelled on (the "
        f"{where} presented {served.peer_spki_sha256}): TLS is not terminated by the attested TD",
        reason="tls_peer_not_attested",
        details=details,
    )
