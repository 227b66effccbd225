"""The evidence bundle: directory and zip forms, strict meta.json, round trip."""

from __future__ import annotations

import contextlib
import json
import warnings
import zipfile
from pathlib import Path

import pytest
from fixture_bundles import phala_flat
from hypothesis import given
from hypothesis import strategies as st

from verifier.core.model import NonceOrigin
from verifier.evidence import bundle as bundle_module
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


@given(
    st.dictionaries(
        st.text(max_size=12), st.one_of(st.none(), st.integers(), st.text(max_size=70), st.booleans()), max_size=6
    )
)
def test_meta_parser_raises_only_bundle_errors(data: dict) -> None:
    with contextlib.suppress(BundleError):
        BundleMeta.from_json(data)


# ---------------------------------------------------------------- fuzzing regressions: types, hostile zips, bounds

_WRONG = {"a list": [], "an object": {}, "a number": 1, "a boolean": True}


@pytest.mark.parametrize("kind", sorted(_WRONG))
@pytest.mark.parametrize(
    "key", ["nonce_origin", "model", "chat_id", "signing_algo", "signing_address", "gateway", "nonce", "captured_at"]
)
def test_every_meta_json_field_of_the_wrong_type_is_a_bundle_error_naming_it(key: str, kind: str) -> None:
    value = _WRONG[kind]
    if key == "captured_at" and kind == "a number":
        value = "1"  # a number is its right type
    with pytest.raises(BundleError) as err:
        Bundle.from_files({"meta.json": json.dumps({key: value}).encode()})
    assert f"meta.json: {key}: got" in err.value.message


def test_meta_json_nonce_origin_list_or_object_is_a_bundle_error_not_a_type_error() -> None:
    # fuzzing found: `origin not in {...}` raised TypeError (unhashable) for a list or an object
    for raw in (b'{"nonce_origin": ["minted"]}', b'{"nonce_origin": {"minted": 1}}'):
        with pytest.raises(BundleError, match="nonce_origin: got a JSON"):
            Bundle.from_files({"meta.json": raw})


def test_meta_json_string_with_a_lone_surrogate_is_a_bundle_error_naming_the_field() -> None:
    with pytest.raises(BundleError, match=r"\$\.model: a string holds a lone UTF-16 surrogate"):
        Bundle.from_files({"meta.json": b'{"model": "m\\ud800"}'})


def test_meta_json_nonce_with_spaces_is_refused() -> None:
    with pytest.raises(BundleError, match="nonce"):
        BundleMeta.from_json({"nonce": "00 " * 31 + "00"})


def _zip(tmp_path: Path, members: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> Path:
    path = tmp_path / "b.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, body in members:
            info = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))
            info.compress_type = method
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # zipfile warns while writing a duplicated name
                zf.writestr(info, body)
    return path


def test_zip_member_with_an_empty_name_is_a_bundle_error_not_an_index_error(tmp_path: Path) -> None:
    # fuzzing found: ZipInfo.is_dir() indexes filename[-1], an IndexError for an empty name
    with pytest.raises(BundleError, match="zip member name '' is not a plain relative path"):
        Bundle.load(_zip(tmp_path, [("meta.json", b"{}"), ("", b"x")]))


@pytest.mark.parametrize(
    "name", ["../meta.json", "case/../meta.json", "/meta.json", "./report.json", "a//report.json", "nras\\jwks.json"]
)
def test_zip_member_with_a_traversing_absolute_or_odd_name_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(BundleError, match="is not a plain relative path"):
        Bundle.load(_zip(tmp_path, [(name, b"{}")]))


def test_zip_with_a_duplicated_member_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"zip members \['report.json'\] appear more than once"):
        Bundle.load(_zip(tmp_path, [("report.json", b"{}"), ("report.json", b"[]")]))


def test_zip_directory_entries_are_skipped(tmp_path: Path) -> None:
    members = [("case/", b""), ("case/nras/", b""), ("case/report.json", b"{}"), ("case/nras/jwks.json", b"{}")]
    b = Bundle.load(_zip(tmp_path, members))
    assert b.report == b"{}" and b.nras == {"jwks.json": b"{}"}


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_zip_member_compressed_without_a_bounded_decompressor_is_refused(tmp_path: Path, method: int) -> None:
    with pytest.raises(BundleError, match=f"compression method {method}"):
        Bundle.load(_zip(tmp_path, [("report.json", b"{}")], method))


def test_zip_members_larger_than_the_bundle_limit_are_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _zip(tmp_path, [("report.json", b" " * 5000)])
    monkeypatch.setattr(bundle_module, "MAX_BUNDLE_BYTES", 4096)
    with pytest.raises(BundleError, match="5000 bytes uncompressed, at most 4096"):
        Bundle.load(path)


def test_zip_larger_than_the_bundle_limit_on_disk_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _zip(tmp_path, [("report.json", bytes(range(256)) * 40)], zipfile.ZIP_STORED)
    monkeypatch.setattr(bundle_module, "MAX_BUNDLE_BYTES", 4096)
    with pytest.raises(BundleError, match="zip larger than 4096 bytes"):
        Bundle.load(path)


def test_zip_with_more_members_than_the_limit_is_refused(tmp_path: Path) -> None:
    members = [(f"collateral/c{i}.json", b"{}") for i in range(bundle_module.MAX_FILES + 1)]
    with pytest.raises(BundleError, match=f"at most {bundle_module.MAX_FILES}"):
        Bundle.load(_zip(tmp_path, members, zipfile.ZIP_STORED))


def test_directory_bundle_over_the_size_or_file_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "nras").mkdir()
    for i in range(3):
        (tmp_path / "nras" / f"r{i}.json").write_bytes(b" " * 2000)
    monkeypatch.setattr(bundle_module, "MAX_BUNDLE_BYTES", 4096)
    with pytest.raises(BundleError, match="bundle larger than 4096 bytes"):
        Bundle.load(tmp_path)
    monkeypatch.setattr(bundle_module, "MAX_BUNDLE_BYTES", 64 * 1024 * 1024)
    monkeypatch.setattr(bundle_module, "MAX_FILES", 2)
    with pytest.raises(BundleError, match="more than 2 files"):
        Bundle.load(tmp_path)


def test_oversized_meta_json_is_refused() -> None:
    with pytest.raises(BundleError, match=r"meta\.json: \d+ bytes, at most"):
        Bundle.from_files({"meta.json": b'{"model": "' + b"m" * bundle_module.MAX_META_BYTES + b'"}'})
