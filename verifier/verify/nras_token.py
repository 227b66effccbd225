"""Offline verification of an NRAS v3 "detached EAT" response ``[["JWT", overall], {"GPU-0": jwt, ...}]``.

Rules: the checks of NVIDIA/attestation-sdk (C++) on an NRAS answer, plus a pinned intermediate.
Every signature is verified before any claim is read; a failure token counts only if it is genuine.
Key: picked by ``kid`` from a JWKS snapshot; its ``x5c[1]`` must be the pinned intermediate, and
``x5c[0]`` → ``x5c[1]`` must pass RFC 5280 path validation at the verification time with the pinned
intermediate as trust anchor (``verify.x509_path``); ``x5c[0]`` must also be valid at the token's
``iat``, and the JWK must be ``x5c[0]``'s key. A chain outside its validity at the verification time
is ``nras_token_expired`` (a token cannot outlive the certificate that signed it, and a recorded
answer re-verified later keeps saying so); any other chain failure is ``nras_token_invalid``.

Pairing: NRAS names its per-GPU tokens ``GPU-<i>``, i = position in the request's ``evidence_list``,
and states which device each is about as ``ueid`` (the leaf certificate serial, decimal) and
``hwmodel`` (the device certificate's chip, "GH100"; older answers give its whole CN). Token ``GPU-i``
must name exactly the device of evidence entry i: a token NRAS issued for another GPU, or the
right tokens in another order, fail ``nras_device_mismatch``. The devices themselves must be distinct.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeGuard

import jwt

from verifier.core.errors import CheckFailed, EvidenceError, Indeterminate
from verifier.core.trust import TrustAnchors
from verifier.evidence.gpu_cert import GpuIdentity, check_distinct_gpus
from verifier.verify.memo import Memo
from verifier.verify.nras_keys import jwks_by_kid, trusted_key

_ALG = "ES384"
_MAX_GPUS = 64
_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


@dataclass(frozen=True, slots=True)
class NrasGpuClaims:
    name: str  # "GPU-<n>", n = position in the NRAS request's evidence_list
    hwmodel: str | None
    ueid: str | None
    driver_version: str | None
    vbios_version: str | None
    measres: str | None
    secboot: bool | None
    dbgstat: str | None
    warning: str | None
    error: str | None  # "4010 NONCE_NOT_MATCHING (nonce)" from x-nvidia-error-details


@dataclass(frozen=True, slots=True)
class NrasResult:
    overall: bool
    nonce: str
    kid: str
    iat: int
    exp: int
    version: str | None  # x-nvidia-ver
    gpus: tuple[NrasGpuClaims, ...]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Token:
    name: str
    compact: str
    kid: str
    claims: dict[str, Any]


def verify_nras_response(
    body: bytes | list[Any],
    *,
    jwks: dict[str, Any],
    expected_nonce: bytes,
    devices: Sequence[GpuIdentity],
    now: int,
    anchors: TrustAnchors,
    leeway: int = 60,
    memo: Memo | None = None,
) -> NrasResult:
    """``devices``: the identities of the evidence entries NRAS was asked about, in request order. ``memo``
    remembers JWKS keys whose chain validated (each use still judges the key's window at ``now``)."""
    gpu_count = len(devices)
    check_distinct_gpus(devices)
    overall_jws, device_jws = _split_body(body)
    keys = jwks_by_kid(jwks)
    # 1. signatures (and key provenance) of every token, before any claim is trusted
    overall = _verify_token("overall", overall_jws, keys, anchors, now, memo)
    tokens_by_gpu = [_verify_token(name, tok, keys, anchors, now, memo) for name, tok in device_jws.items()]
    tokens = [overall, *tokens_by_gpu]
    # 2. claims
    for t in tokens:
        if t.claims.get("iss") != anchors.nras_issuer:
            raise CheckFailed(
                f"NRAS {t.name} token issuer {t.claims.get('iss')!r} is not {anchors.nras_issuer!r}",
                reason="nras_token_invalid",
                details={"expected": anchors.nras_issuer, "got": t.claims.get("iss")},
            )
    for t in tokens:
        _check_times(t, now, leeway)
    _check_submods(overall, tokens_by_gpu, gpu_count)
    gpus = tuple(
        _gpu_claims(t) for t in sorted(tokens_by_gpu, key=lambda d: int(d.name[4:]))
    )  # names are GPU-0..n-1 now
    # A negative answer is a fail whatever nonce it carries, so NRAS's own reason (e.g. NONCE_NOT_MATCHING) is
    # reported first; only a positive answer needs our nonce for it to count.
    if overall.claims.get("x-nvidia-overall-att-result") is not True:
        detail = _failure_summary(gpus)
        raise CheckFailed(
            f"NRAS overall attestation result is false: {detail}",
            reason="nras_result_false",
            details={
                "gpus": {g.name: g.error for g in gpus},
                "kid": overall.kid,
                "iat": overall.claims.get("iat"),
                "eat_nonce": overall.claims.get("eat_nonce"),
                "expected_nonce": expected_nonce.hex(),
            },
        )
    for t in tokens:
        if t is overall or "eat_nonce" in t.claims:
            got = t.claims.get("eat_nonce")
            if not isinstance(got, str) or not hmac.compare_digest(got.lower().encode(), expected_nonce.hex().encode()):
                raise CheckFailed(
                    f"NRAS {t.name} token eat_nonce {got!r} is not {expected_nonce.hex()}",
                    reason="nras_nonce_mismatch",
                    details={"expected": expected_nonce.hex(), "got": got},
                )
    _check_pairing(gpus, devices)
    bad = {g.name: _claim_problem(g) for g in gpus if _claim_problem(g)}
    if bad:
        raise CheckFailed(
            "NRAS per-GPU claims not acceptable: " + "; ".join(f"{k}: {v}" for k, v in bad.items()),
            reason="nras_claim_failed",
            details={"gpus": bad},
        )
    return NrasResult(
        overall=True,
        nonce=expected_nonce.hex(),
        kid=overall.kid,
        iat=overall.claims["iat"],
        exp=overall.claims["exp"],
        version=_opt_str(overall.claims.get("x-nvidia-ver")),
        gpus=gpus,
    )


# ---------------------------------------------------------------- structure


def _split_body(body: bytes | list[Any]) -> tuple[str, dict[str, str]]:
    if isinstance(body, bytes | bytearray | str):
        try:
            body = json.loads(body)
        except (ValueError, RecursionError):
            raise EvidenceError("the NRAS response is not JSON") from None
    if not (isinstance(body, list) and len(body) == 2 and isinstance(body[0], list) and isinstance(body[1], dict)):
        raise EvidenceError('the NRAS response is not [["JWT", overall], {"GPU-n": jwt}]')
    head, detached = body
    if len(head) != 2 or head[0] != "JWT" or not isinstance(head[1], str):
        raise EvidenceError('the NRAS response does not start with ["JWT", <token>]')
    if len(detached) > _MAX_GPUS or not all(isinstance(k, str) and isinstance(v, str) for k, v in detached.items()):
        raise EvidenceError("the NRAS detached tokens are not a map of names to JWTs")
    return head[1], detached


# ---------------------------------------------------------------- signatures


def _verify_token(
    name: str, compact: str, keys: dict[str, Mapping[str, Any]], anchors: TrustAnchors, now: int, memo: Memo | None
) -> _Token:
    header = _header(name, compact)
    alg, kid = header.get("alg"), header.get("kid")
    if alg != _ALG:  # never none / HS* / RS*: the key type is fixed by us, not the token
        raise CheckFailed(f"NRAS {name} token alg {alg!r} is not {_ALG}", reason="nras_token_invalid")
    if not isinstance(kid, str):
        raise CheckFailed(f"NRAS {name} token has no kid", reason="nras_token_invalid")
    jwk = keys.get(kid)
    if jwk is None:
        raise Indeterminate(
            f"NRAS {name} token kid {kid} is not in the JWKS snapshot",
            reason="nras_jwks_unavailable",
            details={"kid": kid},
        )
    key = trusted_key(kid, jwk, anchors, now, memo)
    try:
        claims = jwt.decode(
            compact,
            key=key.public_key,
            algorithms=[_ALG],
            options={
                "verify_signature": True,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
                "verify_sub": False,
                "verify_jti": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise CheckFailed(
            f"NRAS {name} token signature does not verify with key {kid}", reason="nras_token_invalid"
        ) from None
    except jwt.PyJWTError as exc:
        raise EvidenceError(f"NRAS {name} token does not decode: {exc}") from None
    iat = claims.get("iat")
    if not _is_int(iat):
        raise EvidenceError(f"NRAS {name} token has no integer iat")
    lo, hi = key.window
    if not lo <= iat <= hi:
        raise CheckFailed(
            f"NRAS {name} token iat {iat} is outside its signing certificate's validity {lo}..{hi}",
            reason="nras_token_invalid",
        )
    return _Token(name, compact, kid, claims)


def _header(name: str, compact: str) -> dict[str, Any]:
    # Parsed here (one C regex) rather than by jwt.get_unverified_header, which scans the whole token in Python.
    if not _COMPACT.fullmatch(compact):
        raise EvidenceError(f"NRAS {name} token is not a compact JWS")
    try:
        header = json.loads(_b64url(compact.split(".", 1)[0]))
    except (ValueError, binascii.Error, RecursionError):
        raise EvidenceError(f"NRAS {name} token header does not decode") from None
    if not isinstance(header, dict):
        raise EvidenceError(f"NRAS {name} token header is not an object")
    return header


# ---------------------------------------------------------------- claims


def _check_times(t: _Token, now: int, leeway: int) -> None:
    c = t.claims
    exp, nbf, iat = c.get("exp"), c.get("nbf", c.get("iat")), c.get("iat")
    if not (_is_int(exp) and _is_int(nbf) and _is_int(iat)):
        raise EvidenceError(f"NRAS {t.name} token lacks integer exp/nbf/iat")
    if now > exp + leeway or now < nbf - leeway or now < iat - leeway:
        raise CheckFailed(
            f"NRAS {t.name} token is not valid at {now} (nbf {nbf}, exp {exp}, leeway {leeway}s)",
            reason="nras_token_expired",
            details={"now": now, "nbf": nbf, "iat": iat, "exp": exp},
        )


def _check_submods(overall: _Token, devices: list[_Token], gpu_count: int) -> None:
    def bad(why: str) -> CheckFailed:
        return CheckFailed(f"NRAS submods: {why}", reason="nras_submod_mismatch")

    submods = overall.claims.get("submods")
    names = {f"GPU-{i}" for i in range(gpu_count)}
    if gpu_count < 1:
        raise bad("no GPU is expected, so nothing is attested")
    if not isinstance(submods, dict):
        raise bad("the overall token has no submods")
    if len(submods) != gpu_count or len(devices) != gpu_count:
        raise bad(f"{len(submods)} submods and {len(devices)} device tokens for {gpu_count} GPU(s)")
    if set(submods) != names or {d.name for d in devices} != names:
        raise bad(f"names {sorted(submods)} / {sorted(d.name for d in devices)} are not GPU-0..GPU-{gpu_count - 1}")
    for d in devices:
        entry = submods[d.name]
        digest = hashlib.sha256(d.compact.encode("ascii")).hexdigest()
        ok = (
            isinstance(entry, list)
            and len(entry) == 2
            and entry[0] == "DIGEST"
            and isinstance(entry[1], list)
            and len(entry[1]) == 2
            and entry[1][0] == "SHA-256"
            and isinstance(entry[1][1], str)
        )
        if not ok or not hmac.compare_digest(entry[1][1].lower().encode(), digest.encode()):
            raise bad(f"{d.name}: the digest does not match sha256 of its device token")


def _check_pairing(gpus: tuple[NrasGpuClaims, ...], devices: Sequence[GpuIdentity]) -> None:
    """Token GPU-i is about evidence entry i's device: same ueid, and its hwmodel is that device's (chip)."""
    by_name = {f"GPU-{d.index}": d for d in devices}
    bad: dict[str, dict[str, Any]] = {}
    for g in gpus:
        dev = by_name.get(g.name)
        if dev is None:
            bad[g.name] = {"expected": None, "got": {"ueid": g.ueid, "hwmodel": g.hwmodel}}
            continue
        chip = dev.hwmodel.split(" ", 1)[0]
        if g.ueid != dev.ueid or g.hwmodel not in (dev.hwmodel, chip):
            bad[g.name] = {
                "expected": {"ueid": dev.ueid, "hwmodel": f"{chip} or {dev.hwmodel}"},
                "got": {"ueid": g.ueid, "hwmodel": g.hwmodel},
            }
    if bad:
        shown = "; ".join(
            f"{name} is about ueid {v['got']['ueid']} ({v['got']['hwmodel']})"
            + (f", the evidence's {name} is ueid {v['expected']['ueid']}" if v["expected"] else "")
            for name, v in bad.items()
        )
        raise CheckFailed(
            f"NRAS tokens do not name the devices of the evidence: {shown}",
            reason="nras_device_mismatch",
            details={"gpus": bad},
        )


def _gpu_claims(t: _Token) -> NrasGpuClaims:
    c = t.claims
    err = c.get("x-nvidia-error-details")
    error = None
    if isinstance(err, dict):
        error = " ".join(str(p) for p in (err.get("code"), err.get("message")) if p is not None) or "error"
        if err.get("fieldName"):
            error += f" ({err['fieldName']})"
    secboot = c.get("secboot")
    return NrasGpuClaims(
        name=t.name,
        hwmodel=_opt_str(c.get("hwmodel")),
        ueid=_opt_str(c.get("ueid")),
        driver_version=_opt_str(c.get("x-nvidia-gpu-driver-version")),
        vbios_version=_opt_str(c.get("x-nvidia-gpu-vbios-version")),
        measres=_opt_str(c.get("measres")),
        secboot=secboot if isinstance(secboot, bool) else None,
        dbgstat=_opt_str(c.get("dbgstat")),
        warning=_opt_str(c.get("x-nvidia-attestation-warning")),
        error=error,
    )


def _claim_problem(g: NrasGpuClaims) -> str:
    problems = []
    if g.measres != "success":
        problems.append(f"measres={g.measres}")
    if g.secboot is not True:
        problems.append(f"secboot={g.secboot}")
    if g.dbgstat != "disabled":
        problems.append(f"dbgstat={g.dbgstat}")
    if g.error:
        problems.append(g.error)
    return ", ".join(problems)


def _failure_summary(gpus: tuple[NrasGpuClaims, ...]) -> str:
    groups: dict[str, list[str]] = {}
    for g in gpus:
        groups.setdefault(g.error or _claim_problem(g) or "no error details", []).append(g.name)
    return "; ".join(f"{', '.join(names)}: {why}" for why, names in groups.items()) or "no device tokens"


def _opt_str(v: object) -> str | None:
    return v if isinstance(v, str) else None


def _is_int(v: object) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _b64url(s: object) -> bytes:
    if not isinstance(s, str):
        raise TypeError("not a string")
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
