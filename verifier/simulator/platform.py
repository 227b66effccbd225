"""The simulated TDX platform: the TCB numbers the PCK certificate, TCB info, QE identity and quote share.

Values mirror the real sample ``fixtures/tdx/dcap-qvl-samples/tdx_quote.bin`` (an UpToDate
FMSPC B0C06F000000 platform, TDX module 1.x): docs/dcap.md §4.1 (quote fields), §4.3 (collateral).
A quote verifies as UpToDate when every number here meets the first (UpToDate) TCB level:
PCK SGX components ≥ level components, PCE SVN ≥ level pcesvn, TEE_TCB_SVN[2:] ≥ the TDX
components (TEE_TCB_SVN[1] > 0 ⇒ components 0-1 are skipped and TDX module identity
``TDX_%02x`` % TEE_TCB_SVN[1] rates TEE_TCB_SVN[0] against its isvsvn levels; docs/dcap.md §1.3).
"""

from __future__ import annotations

from dataclasses import dataclass

INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")


@dataclass(frozen=True, slots=True)
class Platform:
    fmspc: bytes = bytes.fromhex("b0c06f000000")
    pce_id: bytes = bytes.fromhex("0000")
    # PCK certificate TCB (SGX TCB components = CPUSVN bytes, PCESVN)
    cpu_svn: bytes = bytes.fromhex("03030202040100050000000000000000")
    pce_svn: int = 11
    sgx_type: int = 1  # Scalable (PCK extension 1.2.840.113741.1.13.1.5)
    dynamic_platform: bool = True  # real cloud PCK certs: dynamic platform, cached keys, SMT on
    cached_keys: bool = True
    smt_enabled: bool = True
    # TD report TEE_TCB_SVN: [0] TDX module SVN, [1] module major version, [2] TDX late microcode, ...
    tee_tcb_svn: bytes = bytes.fromhex("06010300000000000000000000000000")
    # TD report constants that tcbInfo.tdxModule must match
    mr_signer_seam: bytes = bytes(48)
    seam_attributes: bytes = bytes(8)
    # TD quoting enclave (QE identity "TD_QE" v2 and the QE report in the quote)
    qe_mrsigner: bytes = bytes.fromhex("dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5")
    qe_isvprodid: int = 2
    qe_isvsvn: int = 6
    qe_attributes: bytes = bytes.fromhex("1500000000000000e700000000000000")  # INIT|MODE64BIT|PROVISIONKEY; no DEBUG
    qe_miscselect: int = 0
    qe_cpu_svn: bytes = bytes.fromhex("0303191b04ff00060000000000000000")
    qe_mrenclave: bytes = bytes.fromhex("e5a3a7b5d830c2953b98534c6c59a3a34fdc34e933f7f5898f0a85cf08846bca")
    # TCB levels published in the collateral (what the numbers above are rated against)
    level_sgx_components: tuple[int, ...] = (2, 2, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0)
    level_pce_svn: int = 11
    level_tdx_components: tuple[int, ...] = (5, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    level_qe_isvsvn: int = 4
    level_tdx_module_isvsvn: int = 4
    tcb_date: str = "2024-03-13T00:00:00Z"
    tcb_evaluation_data_number: int = 17

    @property
    def tdx_module_id(self) -> str:
        return f"TDX_{self.tee_tcb_svn[1]:02X}"
