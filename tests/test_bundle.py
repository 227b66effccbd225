"""The evidence bundle: directory and zip forms, strict meta.json, round trip."""

from __future__ import annotations

import contextlib
import json
import zipfile
from pathlib import Path

import pytest
from fixture_bundles import phala_flat
from hypothesis import given
from hypothesis import strategies as st

from verifier.core.model import NonceOrigin
from verifier.evidence.bundle import Bundle, BundleError, BundleMeta


def test_bundle_round_trips_through_zip_and_directory(tmp_path: Path) -> None:
    original = phala_flat()
    zpath = tmp_path / "b.zip"
    zpath.write_bytes(original.to_zip())
    from_zip = Bundle.load(zpath)
    assert from_zip.files() == original.files()
    folder = tmp_path / "dir"
    for name, body in original.files().items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(body)
    assert Bundle.load(folder).files() == original.files()


def test_zip_of_the_bundle_folder_itself_is_accepted(tmp_path: Path) -> None:
    zpath = tmp_path / "b.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("case/meta.json", json.dumps({"model": "m"}))
        zf.writestr("case/report.json", "{}")
    b = Bundle.load(zpath)
    assert b.meta.model == "m" and b.report == b"{}"


def test_to_zip_is_deterministic() -> None:
    assert phala_flat().to_zip() == phala_flat().to_zip()


@pytest.mark.parametrize(
    ("meta", "needle"),
    [
        ({"nonce": "abcd"}, "nonce: got 'abcd', expected 64 hex"),
        ({"nonce": 5}, "nonce: got 5"),
        ({"nonce_origin": "guessed"}, "nonce_origin: got 'guessed'"),
        ({"captured_at": "yesterday"}, "captured_at: got 'yesterday'"),
        ({"model": 3}, "model: got 3"),
        ({"colour": "red"}, "unknown keys ['colour']"),
    ],
)
def test_bad_meta_json_is_a_bundle_error_naming_the_field(meta: dict, needle: str) -> None:
    with pytest.raises(BundleError) as err:
        BundleMeta.from_json(meta)
    assert needle in err.value.message


def test_unexpected_file_is_rejected_with_its_name() -> None:
    with pytest.raises(BundleError, match=r"unexpected file 'secrets\.txt'"):
        Bundle.from_files({"secrets.txt": b"x"})


def test_missing_path_and_garbage_zip_are_bundle_errors(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no such bundle"):
        Bundle.load(tmp_path / "nope")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    with pytest.raises(BundleError, match="not a readable zip"):
        Bundle.load(junk)


def test_nonce_without_origin_counts_as_supplied() -> None:
    meta = BundleMeta.from_json({"nonce": "00" * 32})
    assert meta.nonce_origin is NonceOrigin.SUPPLIED


@given(st.dictionaries(st.text(max_size=12), st.one_of(st.none(), st.integers(), st.text(max_size=70), st.booleans()), max_size=6))
def test_meta_parser_raises_only_bundle_errors(data: dict) -> None:
    with contextlib.suppress(BundleError):
        BundleMeta.from_json(data)
