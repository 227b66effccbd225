"""The evidence bundle: the unit of evidence everywhere (offline re-verification, ledger, export).

A directory, or a .zip of one, holding (each part optional):

    meta.json            model, chat_id, signing_algo, signing_address, nonce, nonce_origin, captured_at, gateway
    request.body         exact request bytes sent
    response.body        exact response bytes received (an SSE stream as received)
    request.sha256       instead of request.body when the bytes were not retained: their sha256, 64 hex digits
    response.sha256      the same for response.body (``--retain-bodies hashes``)
    signature.json       body of GET /v1/signature/{id}
    report.json          body of GET /v1/attestation/report
    headers.json         allow-listed upstream response headers of the completion (the proxy records them;
                         never a key): a JSON object of lower-case name -> string value
    tls.json             which TLS peer this verifier saw on each connection to the gateway (completion,
                         signature, report): observer data, never a key (``verifier.evidence.tls_observation``)
    collateral/*.json    Intel TDX collateral, dcap-qvl QuoteCollateralV3 JSON
    nras/jwks.json       NVIDIA NRAS JWKS
    nras/*.json          NRAS response bodies

A bundle that cannot be read (not a directory or zip, bad meta.json) is a ``BundleError``: a usage
error naming what is wrong. Evidence inside it is judged by the checks, never here. Reading is bounded:
at most ``MAX_FILES`` files and ``MAX_BUNDLE_BYTES`` in all (on disk and uncompressed); zip members must
have plain relative names (no empty, ``.``/``..``, absolute or backslash components), appear once, and be
stored or deflated (other methods have no bounded decompression in ``zipfile``).
"""

from __future__ import annotations

import io
import json
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from verifier.core.errors import VerifierError
from verifier.core.model import NonceOrigin
from verifier.evidence.json_object import shape_problem

MAX_BUNDLE_BYTES = 64 * 1024 * 1024
MAX_FILES = 256
MAX_META_BYTES = 64 * 1024
MAX_UNIX_SECONDS = 2**40  # year 36812: any time beyond is an input error, not a date
_NAME = re.compile(
    r"^(meta\.json|request\.body|response\.body|request\.sha256|response\.sha256|signature\.json|report\.json"
    r"|headers\.json|tls\.json|collateral/[A-Za-z0-9._-]+\.json|nras/[A-Za-z0-9._-]+\.json)$"
)
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_META_KEYS = {
    "model",
    "chat_id",
    "signing_algo",
    "signing_address",
    "nonce",
    "nonce_origin",
    "captured_at",
    "gateway",
    "reused_from",
    "report_fetched_at",
}
_META_STRINGS = ("model", "chat_id", "signing_algo", "signing_address", "gateway", "reused_from")
_NONCE = re.compile(r"(?:0[xX])?[0-9a-fA-F]{64}", re.ASCII)
_SKIPPED = ("PROVENANCE.md", "README.md")  # notes kept next to recorded evidence, not part of the bundle


class BundleError(VerifierError):
    reason = "malformed_bundle"


@dataclass(frozen=True, slots=True)
class BundleMeta:
    model: str | None = None
    chat_id: str | None = None
    signing_algo: str | None = None
    signing_address: str | None = None
    nonce: bytes | None = None
    nonce_origin: NonceOrigin | None = None
    captured_at: int | None = None
    gateway: str | None = None
    reused_from: str | None = None  # the verdict whose attestation (report, nonce) this bundle reuses
    report_fetched_at: int | None = None  # when this verifier fetched the report (a reused one: the original fetch)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "chat_id": self.chat_id,
            "signing_algo": self.signing_algo,
            "signing_address": self.signing_address,
            "nonce": self.nonce.hex() if self.nonce is not None else None,
            "nonce_origin": str(self.nonce_origin) if self.nonce_origin else None,
            "captured_at": self.captured_at,
            "gateway": self.gateway,
            "reused_from": self.reused_from,
            "report_fetched_at": self.report_fetched_at,
        }

    @classmethod
    def from_json(cls, data: object) -> BundleMeta:
        if not isinstance(data, dict):
            raise BundleError(f"meta.json: got {type(data).__name__}, expected a JSON object")
        problem = shape_problem(data)
        if problem is not None:
            raise BundleError(f"meta.json: {problem}")
        unknown = set(data) - _META_KEYS
        if unknown:
            raise BundleError(f"meta.json: unknown keys {sorted(unknown)}; allowed: {sorted(_META_KEYS)}")
        for key in _META_STRINGS:
            if data.get(key) is not None and not isinstance(data[key], str):
                raise BundleError(f"meta.json: {key}: got {_show(data[key])}, expected a string or null")
        nonce = None
        if data.get("nonce") is not None:
            text = data["nonce"]
            if not isinstance(text, str) or not _NONCE.fullmatch(text):
                raise BundleError(f"meta.json: nonce: got {_show(text)}, expected 64 hex characters (32 bytes)")
            nonce = bytes.fromhex(text[-64:])
        origin = data.get("nonce_origin")
        if origin is not None and (not isinstance(origin, str) or origin not in {o.value for o in NonceOrigin}):
            raise BundleError(f"meta.json: nonce_origin: got {_show(origin)}, expected 'minted' or 'supplied'")
        captured = data.get("captured_at")
        if captured is not None and (
            not isinstance(captured, int | float) or isinstance(captured, bool) or not 0 <= captured <= MAX_UNIX_SECONDS
        ):  # NaN and Infinity fail the range too
            raise BundleError(
                f"meta.json: captured_at: got {_show(captured)}, expected unix seconds 0..{MAX_UNIX_SECONDS}"
            )
        fetched = data.get("report_fetched_at")
        if fetched is not None and (
            not isinstance(fetched, int) or isinstance(fetched, bool) or not 0 <= fetched <= MAX_UNIX_SECONDS
        ):
            raise BundleError(
                f"meta.json: report_fetched_at: got {_show(fetched)}, expected unix seconds 0..{MAX_UNIX_SECONDS}"
            )
        return cls(
            model=data.get("model"),
            chat_id=data.get("chat_id"),
            signing_algo=data.get("signing_algo"),
            signing_address=data.get("signing_address"),
            nonce=nonce,
            nonce_origin=NonceOrigin(origin) if origin else (NonceOrigin.SUPPLIED if nonce else None),
            captured_at=int(captured) if captured is not None else None,
            gateway=data.get("gateway"),
            reused_from=data.get("reused_from"),
            report_fetched_at=fetched,
        )


@dataclass(frozen=True, slots=True)
class Bundle:
    meta: BundleMeta = field(default_factory=BundleMeta)
    request: bytes | None = None
    response: bytes | None = None
    signature: bytes | None = None
    report: bytes | None = None
    collateral: dict[str, bytes] = field(default_factory=dict)  # file name (no folder) -> bytes
    nras: dict[str, bytes] = field(default_factory=dict)  # file name (no folder) -> bytes
    # --retain-bodies hashes (added by the edges' issue 13): the sha256 (hex) of request/response bytes that were
    # not retained; a bundle holds a body or its hash, never both. The engine re-verifies the signed hashes
    # against these when the body itself is absent.
    request_sha256: str | None = None
    response_sha256: str | None = None
    # the proxy (issue 16): headers.json, the allow-listed upstream response headers, exact bytes (parsed by the checks)
    headers: bytes | None = None
    # TLS channel binding: tls.json, the peers this verifier observed (exact bytes, parsed by the engine)
    tls: bytes | None = None

    def files(self) -> dict[str, bytes]:
        out = {"meta.json": json.dumps(self.meta.to_json(), indent=2, sort_keys=True).encode() + b"\n"}
        for name, body in (
            ("request.body", self.request),
            ("response.body", self.response),
            ("signature.json", self.signature),
            ("report.json", self.report),
        ):
            if body is not None:
                out[name] = body
        for name, digest in (("request.sha256", self.request_sha256), ("response.sha256", self.response_sha256)):
            if digest is not None:
                out[name] = digest.encode() + b"\n"
        if self.headers is not None:
            out["headers.json"] = self.headers
        if self.tls is not None:
            out["tls.json"] = self.tls
        out.update({f"collateral/{n}": b for n, b in self.collateral.items()})
        out.update({f"nras/{n}": b for n, b in self.nras.items()})
        return out

    def to_zip(self) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, body in sorted(self.files().items()):
                info = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, body)
        return buf.getvalue()

    @classmethod
    def from_files(cls, files: dict[str, bytes]) -> Bundle:
        if len(files) > MAX_FILES:
            raise BundleError(f"bundle has {len(files)} files, at most {MAX_FILES} are read")
        for name in files:
            if not _NAME.match(name):
                raise BundleError(
                    f"unexpected file {name!r:.120} in bundle; see README 'Evidence bundle' for the layout"
                )
        meta = BundleMeta()
        if "meta.json" in files:
            raw = files["meta.json"]
            if len(raw) > MAX_META_BYTES:
                raise BundleError(f"meta.json: {len(raw)} bytes, at most {MAX_META_BYTES}")
            try:
                doc = json.loads(raw)  # NaN / Infinity decode, and from_json names the field they are in
            except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
                raise BundleError(f"meta.json is not valid JSON: {str(exc)[:200]}") from None
            meta = BundleMeta.from_json(doc)
        digests: dict[str, str | None] = {}
        for part in ("request", "response"):
            stored = files.get(f"{part}.sha256")
            if stored is None:
                digests[part] = None
                continue
            text = stored.decode("ascii", "replace").strip().lower()
            if not _SHA256_HEX.match(text):
                raise BundleError(f"{part}.sha256: expected 64 hex digits, got {stored[:80]!r}")
            if f"{part}.body" in files:
                raise BundleError(f"bundle holds both {part}.body and {part}.sha256: keep one")
            digests[part] = text
        return cls(
            request_sha256=digests["request"],
            response_sha256=digests["response"],
            meta=meta,
            request=files.get("request.body"),
            response=files.get("response.body"),
            signature=files.get("signature.json"),
            report=files.get("report.json"),
            headers=files.get("headers.json"),
            tls=files.get("tls.json"),
            collateral={n.split("/", 1)[1]: b for n, b in files.items() if n.startswith("collateral/")},
            nras={n.split("/", 1)[1]: b for n, b in files.items() if n.startswith("nras/")},
        )

    @classmethod
    def load(cls, path: str | Path) -> Bundle:
        p = Path(path)
        try:
            if p.is_dir():
                return cls.from_files(_read_dir(p))
            if p.is_file():
                return cls.from_files(_read_zip(p))
        except OSError as exc:  # permission denied, a file vanishing mid-read, an I/O error
            raise BundleError(f"{p}: cannot read the bundle ({type(exc).__name__}: {exc.strerror or exc})") from None
        raise BundleError(f"{p}: no such bundle (expected a directory or a .zip)")


def _show(value: object) -> str:
    """A bounded description of an untrusted value for a message: repr of a scalar, the type of a container."""
    if isinstance(value, dict | list):
        return f"a JSON {'object' if isinstance(value, dict) else 'array'}"
    return f"{value!r:.80}"


def _read_dir(root: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    total = 0
    for f in sorted(root.rglob("*")):
        if f.is_file() and not f.name.startswith(".") and f.name not in _SKIPPED:
            if len(files) >= MAX_FILES:
                raise BundleError(f"{root}: more than {MAX_FILES} files")
            with f.open("rb") as fh:  # at most what is left of the budget, +1 to notice more (no trust in a stat size)
                body = fh.read(MAX_BUNDLE_BYTES - total + 1)
            total += len(body)
            if total > MAX_BUNDLE_BYTES:
                raise BundleError(f"{root}: bundle larger than {MAX_BUNDLE_BYTES} bytes")
            files[f.relative_to(root).as_posix()] = body
    return files


def _read_zip(path: Path) -> dict[str, bytes]:
    if path.stat().st_size > MAX_BUNDLE_BYTES:
        raise BundleError(f"{path}: zip larger than {MAX_BUNDLE_BYTES} bytes")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_FILES:
                raise BundleError(f"{path}: {len(infos)} zip members, at most {MAX_FILES}")
            for info in infos:
                _check_member(path, info)
            members = [i for i in infos if not i.filename.endswith("/")]
            if sum(i.file_size for i in members) > MAX_BUNDLE_BYTES:
                raise BundleError(f"{path}: bundle larger than {MAX_BUNDLE_BYTES} bytes uncompressed")
            names = [i.filename for i in members]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise BundleError(f"{path}: zip members {duplicates} appear more than once")
            prefix = _common_folder(names)
            # zipfile stops at the declared size and checks the CRC, so a member cannot expand past file_size
            return {i.filename[len(prefix) :]: zf.read(i) for i in members if not i.filename.endswith(_SKIPPED)}
    except (
        zipfile.BadZipFile,
        OSError,
        EOFError,
        zlib.error,
        NotImplementedError,
        RuntimeError,
        ValueError,
        struct.error,
    ) as exc:
        # NotImplementedError: unsupported compression method; RuntimeError: encrypted member
        raise BundleError(f"{path}: not a readable zip bundle ({type(exc).__name__}: {exc})") from None


def _check_member(path: Path, info: zipfile.ZipInfo) -> None:
    name = info.filename
    parts = name.removesuffix("/").split("/")
    if not name or name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts):
        raise BundleError(f"{path}: zip member name {name!r:.120} is not a plain relative path")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise BundleError(
            f"{path}: zip member {name!r:.120} uses compression method {info.compress_type} "
            "(only stored and deflated are read)"
        )
    if info.file_size > MAX_BUNDLE_BYTES:
        raise BundleError(
            f"{path}: zip member {name!r:.120} is {info.file_size} bytes uncompressed, at most {MAX_BUNDLE_BYTES}"
        )


def _common_folder(names: list[str]) -> str:
    """Accept a zip of the bundle folder itself: strip one top folder shared by every name."""
    tops = {n.split("/", 1)[0] if "/" in n else "" for n in names}
    if len(tops) == 1 and (top := tops.pop()) not in ("", "collateral", "nras"):
        return top + "/"
    return ""
