"""C2SP signed notes and tlog checkpoints: the published example verifies, ours round-trip, forgeries fail."""

from __future__ import annotations

import base64
import contextlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from verifier.core.checkpoint import (
    Checkpoint,
    CheckpointError,
    NoteSigner,
    NoteVerifier,
    open_note,
    parse_checkpoint,
    verify_checkpoint,
)

# c2sp.org/signed-note, "Verifier keys" example
C2SP_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
C2SP_NOTE = (
    "This is an example message.\n\n"
    "\u2014 example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)

SIGNER = NoteSigner("verifier.test/log", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
CHECKPOINT = Checkpoint("verifier.test/log", 5, bytes(range(32)))


def test_the_published_c2sp_example_note_verifies_with_its_vkey() -> None:
    assert open_note(C2SP_NOTE, NoteVerifier.from_vkey(C2SP_VKEY)) == "This is an example message.\n"


def test_the_published_example_altered_by_one_character_fails() -> None:
    with pytest.raises(CheckpointError, match="does not verify"):
        open_note(C2SP_NOTE.replace("example message", "example massage"), NoteVerifier.from_vkey(C2SP_VKEY))


def test_a_signed_checkpoint_has_the_c2sp_byte_format_and_round_trips() -> None:
    note = SIGNER.sign_checkpoint(CHECKPOINT)
    lines = note.split("\n")
    assert lines[:4] == ["verifier.test/log", "5", base64.b64encode(bytes(range(32))).decode(), ""]
    assert lines[4].startswith("\u2014 verifier.test/log ") and lines[5] == "" and len(lines) == 6
    sig = base64.b64decode(lines[4].split(" ")[2])
    assert sig[:4] == SIGNER.verifier.key_id and len(sig) == 68
    assert (
        verify_checkpoint(note, NoteVerifier.from_vkey(SIGNER.verifier.vkey()), origin="verifier.test/log")
        == CHECKPOINT
    )


def test_a_forged_checkpoint_fails() -> None:
    note = SIGNER.sign_checkpoint(CHECKPOINT)
    forged = note.replace("\n5\n", "\n6\n")
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_checkpoint(forged, SIGNER.verifier)


def test_a_checkpoint_signed_by_another_key_of_the_same_name_fails() -> None:
    other = NoteSigner("verifier.test/log", Ed25519PrivateKey.generate())
    with pytest.raises(CheckpointError, match="no signature by"):
        verify_checkpoint(other.sign_checkpoint(CHECKPOINT), SIGNER.verifier)


def test_unknown_signatures_are_ignored_and_a_known_one_suffices() -> None:
    witness = NoteSigner("witness.test", Ed25519PrivateKey.generate())
    note = witness.sign_checkpoint(CHECKPOINT)
    ours = SIGNER.sign_checkpoint(CHECKPOINT).split("\n\n", 1)[1]
    assert verify_checkpoint(note + ours, SIGNER.verifier) == CHECKPOINT


def test_a_checkpoint_for_another_origin_fails() -> None:
    with pytest.raises(CheckpointError, match="expected"):
        verify_checkpoint(SIGNER.sign_checkpoint(CHECKPOINT), SIGNER.verifier, origin="other/log")


@pytest.mark.parametrize(
    "text",
    [
        "o\n05\nAAAA\n",
        "o\n5\n",
        "o\n-1\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "o\n1\nAAAA\n",
        "o\n1\n!!\n",
        "o\n\n1\n",
    ],
)
def test_malformed_checkpoint_texts_fail(text: str) -> None:
    with pytest.raises(CheckpointError):
        parse_checkpoint(text)


@pytest.mark.parametrize("vkey", ["a+b", "a+530d903a+AAAA", C2SP_VKEY.replace("530d903a", "530d903b"), "a b+00+AA=="])
def test_malformed_or_mismatched_vkeys_fail(vkey: str) -> None:
    with pytest.raises(CheckpointError):
        NoteVerifier.from_vkey(vkey)


@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_arbitrary_notes_raise_only_checkpoint_error(note: bytes | str) -> None:
    with contextlib.suppress(CheckpointError):
        verify_checkpoint(note, SIGNER.verifier)


@given(st.text(max_size=200))
def test_arbitrary_note_tails_after_a_valid_text_raise_only_checkpoint_error(tail: str) -> None:
    with contextlib.suppress(CheckpointError):
        verify_checkpoint(CHECKPOINT.text() + "\n" + tail, SIGNER.verifier)
