"""``SimulatorWorld``: every simulated vendor key and certificate, derived from one seed, and the evidence they make.

One world = one Intel SGX PKI + TDX platform (``pki``, ``platform``), one dstack CVM identity
(``identity``: event log, app_compose, RTMRs), one NVIDIA device PKI with lazily minted GPUs
(``devices``), one fake NRAS (``nras``). The same seed gives byte-identical anchors and evidence in
any process (deterministic keys and RFC 6979 signatures), so a verifier started with
``--trust simulator`` accepts evidence another process simulated with the default seed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from verifier.core.trust import SIMULATOR, TrustAnchors
from verifier.simulator import collateral, event_log, gpu, keys, nras, pki, tdx_quote
from verifier.simulator.event_log import CvmOptions
from verifier.simulator.platform import Platform

DEFAULT_SEED = b"verifier-simulator/v1"
COLLATERAL_VALIDITY = 30 * 86400  # Intel: TCB info, QE identity and PCK CRL are re-issued for 30 days


class SimulatorWorld:
    def __init__(
        self,
        seed: bytes | str = DEFAULT_SEED,
        *,
        platform: Platform | None = None,
        app_name: str = "sim-app",
        app_compose: str | None = None,
        cvm: CvmOptions | None = None,
    ) -> None:
        self.seed = seed.encode() if isinstance(seed, str) else bytes(seed)
        self.platform = platform or Platform()
        self.pki = pki.build_intel_pki(self.seed, self.platform)
        self.attestation_key = keys.p256(self.seed, "intel/qe-attestation-key")
        self.mr_seam = keys.derive(self.seed, "intel/mrseam", 48)
        self.identity = event_log.build_identity(self.seed, app_name=app_name, app_compose=app_compose, options=cvm)
        self.devices = gpu.build_device_pki(self.seed)
        self.nras = nras.build_nras_pki(self.seed)
        self._gpus: dict[int, gpu.GpuDevice] = {}

    # ------------------------------------------------------------------ trust anchors

    @property
    def anchors(self) -> TrustAnchors:
        return TrustAnchors(
            name=SIMULATOR,
            intel_root_ca_der=self.pki.root_der,
            nvidia_device_root_pem=self.devices.root_pem,
            nras_intermediate_der=self.nras.intermediate_der,
            nras_issuer=nras.ISSUER,
        )

    # ------------------------------------------------------------------ Intel TDX

    def tdx_quote(
        self,
        report_data: bytes,
        *,
        debug: bool = False,
        mr_td: bytes | None = None,
        rtmrs: tuple[bytes, bytes, bytes, bytes] | None = None,
        mr_config_id: bytes | None = None,
        td_attributes: bytes | None = None,
        tee_tcb_svn: bytes | None = None,
    ) -> bytes:
        """A TDX quote v4 over ``report_data`` (64 bytes; shorter is zero-padded as dstack does).

        Measurements default to this world's CVM identity (MRTD, event-log RTMRs, mr_config_id of
        its compose hash). ``debug`` sets TDATTRIBUTES.DEBUG, which dcap-qvl rejects.
        """
        if len(report_data) > 64:
            raise ValueError("report_data is at most 64 bytes")
        attrs = td_attributes or tdx_quote.TD_ATTR_SEPT_VE_DISABLE.to_bytes(8, "little")
        if debug:
            attrs = bytes([attrs[0] | tdx_quote.TD_ATTR_DEBUG]) + attrs[1:]
        ident = self.identity
        report = tdx_quote.TdReport(
            tee_tcb_svn=tee_tcb_svn or self.platform.tee_tcb_svn,
            mr_seam=self.mr_seam,
            mr_signer_seam=self.platform.mr_signer_seam,
            seam_attributes=self.platform.seam_attributes,
            td_attributes=attrs,
            mr_td=ident.mr_td if mr_td is None else mr_td,
            mr_config_id=ident.mr_config_id if mr_config_id is None else mr_config_id,
            rtmrs=ident.rtmrs if rtmrs is None else rtmrs,
            report_data=report_data.ljust(64, b"\0"),
        )
        return tdx_quote.build_quote(
            self.platform,
            report,
            attestation_key=self.attestation_key,
            pck_key=self.pki.pck_key,
            pck_chain_pem=self.pki.pck_chain_pem,
        )

    def collateral_json(
        self,
        now: int,
        *,
        expired: bool = False,
        validity: int = COLLATERAL_VALIDITY,
        tcb_status: str = "UpToDate",
        advisory_ids: tuple[str, ...] = (),
        revoke_pck: bool = False,
    ) -> str:
        """QuoteCollateralV3 JSON valid from ``now - 1 h`` for ``validity`` seconds.

        ``expired``: issued ``validity + 1 day`` ago, so ``nextUpdate`` is a day before ``now``
        (dcap-qvl: "TCBInfo expired"). ``tcb_status``/``advisory_ids`` rate the platform's TCB
        level (e.g. "SWHardeningNeeded", "OutOfDate"); ``revoke_pck`` lists the PCK leaf in the PCK CRL.
        """
        issue = now - validity - 86400 if expired else now - 3600
        return collateral.collateral_json(
            self.pki,
            self.platform,
            issue=issue,
            next_update=issue + validity,
            status=tcb_status,
            advisory_ids=advisory_ids,
            revoke_pck=revoke_pck,
        )

    # ------------------------------------------------------------------ dstack CVM

    @property
    def event_log(self) -> list[dict[str, Any]]:
        return self.identity.event_log

    @property
    def app_compose(self) -> str:
        return self.identity.app_compose

    @property
    def compose_hash(self) -> bytes:
        return self.identity.compose_hash

    def info(self) -> dict[str, Any]:
        return self.identity.info()

    def with_app_compose(self, app_compose: str) -> SimulatorWorld:
        """The same machine and app running another compose: new compose hash, RTMR3 and mr_config_id; same keys."""
        return self._with_identity(app_compose, self.identity.options)

    def with_other_app(self, app_compose: str, *, label: str = "other") -> SimulatorWorld:
        """The same genuine machine running somebody else's dstack app: its own app id and compose."""
        return self._with_identity(app_compose, self.identity.options, app_label=label)

    def with_cvm(self, options: CvmOptions) -> SimulatorWorld:
        """The same machine and app booted another way: GPU boot events, event-log attacks (``event_log.ATTACKS``),
        app events after system-ready. RTMRs are replayed from the resulting log, so the quote always matches it."""
        return self._with_identity(self.identity.app_compose, options)

    def _with_identity(self, app_compose: str, options: CvmOptions, app_label: str = "") -> SimulatorWorld:
        clone = object.__new__(SimulatorWorld)
        clone.__dict__.update(self.__dict__)
        clone.identity = event_log.build_identity(
            self.seed, app_name=self.identity.app_name, app_compose=app_compose, options=options, app_label=app_label
        )
        return clone

    # ------------------------------------------------------------------ NVIDIA GPUs and NRAS

    def gpu(self, index: int) -> gpu.GpuDevice:
        dev = self._gpus.get(index)
        if dev is None:
            dev = self._gpus[index] = gpu.build_device(self.seed, self.devices, index)
        return dev

    def gpu_payload(
        self,
        nonce: bytes,
        gpu_count: int = 1,
        *,
        wrong_nonce: bool = False,
        first_gpu: int = 0,
        repeat: bool = False,
        chain_fault: str | None = None,
    ) -> str:
        """``nvidia_payload`` (JSON text, Phala key order) for GPUs first_gpu.., SPDM nonce = ``nonce``.

        ``wrong_nonce`` mimics a gateway that substituted its own nonce: the evidence and the
        payload's ``nonce`` carry sha256("simulator/substituted:" ‖ nonce) instead. ``repeat``: every
        entry is GPU ``first_gpu`` answering the nonce again (same chain, fresh SPDM transcript), so
        one GPU poses as ``gpu_count``. ``chain_fault``: every chain commits that ``gpu.CHAIN_FAULTS``
        RFC 5280 violation.
        """
        if len(nonce) != 32:
            raise ValueError("the GPU nonce is 32 bytes")
        if wrong_nonce:
            nonce = hashlib.sha256(b"simulator/substituted:" + nonce).digest()
        items = []
        for i in range(gpu_count):
            dev = self.gpu(first_gpu if repeat else first_gpu + i)
            chain = (
                gpu.faulty_chain_pem(self.seed, self.devices, dev, chain_fault)
                if chain_fault
                else self.devices.chain_pem(dev)
            )
            items.append((chain, gpu.device_evidence(dev, nonce, attempt=i if repeat else 0)))
        return gpu.nvidia_payload(nonce, items)

    def nras_response(
        self, payload: str | bytes | dict[str, Any], *, now: int, fail: bool = False, other_gpus: bool = False
    ) -> list[Any]:
        """The NRAS ``/v3/attest/gpu`` answer to ``payload`` (JSON-ready list; ``json.dumps`` it for the body).

        ``other_gpus``: genuine tokens, same nonce, but about other devices: NRAS answers as if the
        request had carried GPUs n..2n-1 of this world (n = the payload's GPU count) instead.
        """
        if other_gpus:
            body = json.loads(payload) if isinstance(payload, str | bytes) else payload
            n = len(body["evidence_list"])
            payload = self.gpu_payload(bytes.fromhex(body["nonce"]), n, first_gpu=n)
        return nras.attest(self.nras, payload, now=now, fail=fail)

    def with_nras_fault(self, fault: str) -> SimulatorWorld:
        """The same world whose NRAS signing PKI commits a ``nras.CHAIN_FAULTS`` violation (its anchors pin it)."""
        clone = object.__new__(SimulatorWorld)
        clone.__dict__.update(self.__dict__)
        clone.nras = nras.build_nras_pki(self.seed, fault=fault)
        return clone

    def jwks(self) -> dict[str, Any]:
        return self.nras.jwks()

    def __repr__(self) -> str:
        return f"SimulatorWorld(seed_sha256={hashlib.sha256(self.seed).hexdigest()[:16]}…)"
