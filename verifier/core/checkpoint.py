"""Signed checkpoints of the verdict log: C2SP tlog-checkpoint text in a C2SP signed-note, Ed25519 signatures.

Note text (c2sp.org/tlog-checkpoint): the origin line, the tree size in decimal, the base64 root hash, each ending
in a newline. Signed note (c2sp.org/signed-note): the text, an empty line, then one line per signature
``— <key name> base64(key ID ‖ Ed25519 signature over the text)``, where the key ID is the first four bytes of
``SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public key)``. A verifier key ("vkey") is ``<name>+<hex key ID>+base64(0x01 ‖
public key)``. Signatures from keys other than the one given are ignored, as the spec requires; a note with no
valid signature from it raises ``CheckpointError``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = b"\x01"
SIGNATURE_PREFIX = "\u2014 "
MAX_NOTE_BYTES = 64 * 1024
MAX_SIGNATURES = 16


class CheckpointError(ValueError):
    """A checkpoint or signed note that is malformed or not signed by the expected key."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" or ord(c) < 0x20 for c in name):
        raise CheckpointError(f"key name {name[:80]!r}: must be non-empty, without spaces or '+'")


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(name: str, public: Ed25519PublicKey) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + _raw_public(public)).digest()[:4]


@dataclass(frozen=True, slots=True)
class NoteVerifier:
    name: str
    public: Ed25519PublicKey

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public)

    def vkey(self) -> str:
        raw = base64.b64encode(ED25519 + _raw_public(self.public)).decode()
        return f"{self.name}+{self.key_id.hex()}+{raw}"

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise CheckpointError("verifier key: expected <name>+<hex key id>+<base64 key>")
        name, hex_id, b64 = parts
        _check_name(name)
        try:
            raw = base64.b64decode(b64, validate=True)
            wanted_id = bytes.fromhex(hex_id)
        except (binascii.Error, ValueError):
            raise CheckpointError("verifier key: bad hex key id or base64 key") from None
        if len(raw) != 33 or raw[:1] != ED25519:
            raise CheckpointError("verifier key: only Ed25519 keys (type 0x01, 32 bytes) are supported")
        verifier = cls(name, Ed25519PublicKey.from_public_bytes(raw[1:]))
        if len(wanted_id) != 4 or verifier.key_id != wanted_id:
            raise CheckpointError("verifier key: the key id does not match the name and key")
        return verifier


@dataclass(frozen=True, slots=True)
class NoteSigner:
    name: str
    private: Ed25519PrivateKey

    def __post_init__(self) -> None:
        _check_name(self.name)

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self.private.public_key())

    def sign(self, text: str) -> str:
        """The signed note of ``text`` (which must end in a newline)."""
        _check_text(text)
        sig = self.verifier.key_id + self.private.sign(text.encode())
        return f"{text}\n{SIGNATURE_PREFIX}{self.name} {base64.b64encode(sig).decode()}\n"

    def sign_checkpoint(self, checkpoint: Checkpoint) -> str:
        return self.sign(checkpoint.text())


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise CheckpointError("note text must end in a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise CheckpointError("note text must not contain control characters other than newline")


def open_note(note: str | bytes, verifier: NoteVerifier) -> str:
    """The text of a signed note that carries a valid signature by ``verifier``; CheckpointError otherwise."""
    if isinstance(note, bytes):
        if len(note) > MAX_NOTE_BYTES:
            raise CheckpointError(f"note is larger than {MAX_NOTE_BYTES} bytes")
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError("note is not UTF-8") from None
    if len(note) > MAX_NOTE_BYTES:
        raise CheckpointError(f"note is larger than {MAX_NOTE_BYTES} bytes")
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise CheckpointError("not a signed note: no empty line before the signatures, or no final newline")
    text, signature_lines = note[: split + 1], note[split + 2 :].splitlines()
    _check_text(text)
    if not signature_lines or len(signature_lines) > MAX_SIGNATURES:
        raise CheckpointError(f"a signed note carries 1..{MAX_SIGNATURES} signatures, got {len(signature_lines)}")
    for line in signature_lines:
        if not line.startswith(SIGNATURE_PREFIX) or line.count(" ") != 2:
            raise CheckpointError(f"malformed signature line {line[:80]!r}")
        name, b64 = line[len(SIGNATURE_PREFIX) :].split(" ")
        try:
            sig = base64.b64decode(b64, validate=True)
        except binascii.Error:
            raise CheckpointError(f"signature line of {name[:80]!r}: not base64") from None
        if len(sig) < 5:
            raise CheckpointError(f"signature line of {name[:80]!r}: too short")
        if name != verifier.name or sig[:4] != verifier.key_id:
            continue  # an unknown key (a witness, a rotated key): ignored, as the spec requires
        try:
            verifier.public.verify(sig[4:], text.encode())
        except InvalidSignature:
            raise CheckpointError(f"the signature by {name} does not verify: the note was altered or forged") from None
        return text
    raise CheckpointError(f"the note carries no signature by {verifier.name} (key id {verifier.key_id.hex()})")


def parse_checkpoint(text: str) -> Checkpoint:
    """The checkpoint in a note text (already opened with ``open_note``)."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "" or any(not line for line in lines[:-1]):
        raise CheckpointError("checkpoint: expected at least three non-empty lines (origin, size, root hash)")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not size_text.isascii() or not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise CheckpointError(f"checkpoint: tree size {size_text[:40]!r} is not a decimal without leading zeros")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error:
        raise CheckpointError("checkpoint: root hash is not base64") from None
    if len(root) != 32:
        raise CheckpointError(f"checkpoint: root hash has {len(root)} bytes, expected 32")
    return Checkpoint(origin=origin, size=int(size_text), root=root)


def verify_checkpoint(note: str | bytes, verifier: NoteVerifier, *, origin: str | None = None) -> Checkpoint:
    """Open a signed checkpoint by ``verifier``; with ``origin``, the checkpoint must name that log."""
    checkpoint = parse_checkpoint(open_note(note, verifier))
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(f"checkpoint is for log {checkpoint.origin[:80]!r}, expected {origin!r}")
    return checkpoint
