#!/usr/bin/env python3
"""Audit one verdict of the attestation verifier with nothing but files and three libraries (no verifier code, no
database): PyJWT, cryptography, rfc8785.

    python docs/audit_verdict.py VERDICT.json EAR.jwt PROOF.json CHECKPOINT.txt JWKS.json LOG.vkey

Checks that the verifier signed this result (the EAR, against the JWKS) and committed it to its transparency log
(the RFC 9162 inclusion proof of the verdict's RFC 8785 encoding, up to a C2SP checkpoint signed by the log key).
Prints "ok" and exits 0, or prints why not and exits 2.
"""

import base64
import hashlib
import json
import sys

import jwt
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def fail(why: str) -> None:
    print(f"FAIL: {why}")
    sys.exit(2)


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_path(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.3.2."""
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            fail("inclusion path too long")
        if fn % 2 == 1 or fn == sn:
            r = node(p, r)
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn // 2, sn // 2
        else:
            r = node(r, p)
        fn, sn = fn // 2, sn // 2
    if sn != 0:
        fail("inclusion path too short")
    return r


def open_checkpoint(note: str, vkey: str) -> tuple[str, int, bytes]:
    """C2SP signed-note with an Ed25519 signature by the vkey; returns (origin, size, root)."""
    name, key_id_hex, key_b64 = vkey.strip().split("+", 2)
    raw = base64.b64decode(key_b64)
    public = Ed25519PublicKey.from_public_bytes(raw[1:])
    key_id = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if raw[0] != 1 or key_id.hex() != key_id_hex:
        fail("the log key is not an Ed25519 vkey with a matching key id")
    text, _, signatures = note.rpartition("\n\n")
    text += "\n"
    for line in signatures.splitlines():
        signer, _, sig_b64 = line.removeprefix("\u2014 ").partition(" ")
        sig = base64.b64decode(sig_b64)
        if signer == name and sig[:4] == key_id:
            public.verify(sig[4:], text.encode())  # raises InvalidSignature on a forged checkpoint
            origin, size, root = text.split("\n")[:3]
            if origin != name:
                fail(f"checkpoint of another log: {origin}")
            return origin, int(size), base64.b64decode(root)
    fail("the checkpoint carries no signature by the log key")
    raise AssertionError


def main(
    verdict_file: str, ear_file: str, proof_file: str, checkpoint_file: str, jwks_file: str, vkey_file: str
) -> None:
    verdict = json.load(open(verdict_file, encoding="utf-8"))
    proof = json.load(open(proof_file, encoding="utf-8"))
    token = open(ear_file, encoding="utf-8").read().strip()
    jwks = jwt.PyJWKSet.from_dict(json.load(open(jwks_file, encoding="utf-8")))
    claims = jwt.decode(token, jwks[jwt.get_unverified_header(token)["kid"]].key, algorithms=["EdDSA"])
    if claims["eat_profile"] != "tag:ietf.org,2026:rats/ear#04":
        fail("not an EAR")
    if (claims["x-verifier-verdict-id"], claims["x-verifier-verdict-status"]) != (verdict["id"], verdict["status"]):
        fail("the EAR is about another verdict or another status")
    origin, size, root = open_checkpoint(open(checkpoint_file, encoding="utf-8").read(), open(vkey_file).read())
    if (
        proof["tree_size"] != size
        or proof["verdict_id"] != verdict["id"]
        or proof["log_index"] != claims["x-verifier-log-index"]
    ):
        fail("the proof is for another tree size, verdict or index (stale or mismatched)")
    leaf = hashlib.sha256(b"\x00" + rfc8785.dumps(verdict)).digest()
    path = [base64.b64decode(p) for p in proof["inclusion_path"]]
    if root_from_path(proof["log_index"], size, leaf, path) != root:
        fail("the verdict is not in the signed tree (edited verdict, or a bad proof)")
    print(
        f"ok: verdict {verdict['id']} ({verdict['status']}) is signed by the verifier and is leaf {proof['log_index']} "
        f"of {origin} at size {size}"
    )


if __name__ == "__main__":
    try:
        main(*sys.argv[1:7])
    except Exception as exc:  # an auditor's script: any exception is a failed audit
        fail(f"{type(exc).__name__}: {exc}")
