"""Reference values: the TOML file is validated at load (every error names the key and the file), lookups merge a
model's group with "*", writing round-trips, the TOFU pull plan and drift judgement follow their rules, and the
shipped simulator refs are the simulator's real identity."""

from __future__ import annotations

import contextlib
import hashlib
import json
import string
from typing import Any

import pytest
import tomli_w
from hypothesis import given
from hypothesis import strategies as st

from verifier.adapters.model_list import parse_model_list
from verifier.appraise.drift import (
    CHANGED,
    NOT_PINNED,
    NOT_RECORDED,
    PINNED,
    AttestedIdentity,
    attested_identities,
    blocking_checks,
    judge,
)
from verifier.appraise.refs import (
    AppRef,
    BootChainRef,
    ModelEntry,
    OsImageRef,
    Provenance,
    Refs,
    dump_refs,
    load_refs,
    parse_refs,
    simulator_refs,
    with_model,
)
from verifier.appraise.refs_pull import TOFU_NOTE, Published, plan_pull
from verifier.core.errors import ConfigError, UpstreamError
from verifier.simulator import SimulatorWorld

A1, A2, A3 = b"\x01" * 20, b"\x02" * 20, b"\x03" * 20
C1, C2 = b"\x11" * 32, b"\x12" * 32
O1, O2 = b"\x21" * 32, b"\x22" * 32
M = [bytes([0x30 + i]) * 48 for i in range(6)]
MANUAL = Provenance(source="manual", added_at=1796000000)
GW = "https://gw.example"

BASE = (
    """[refs]
id = "t"
description = "test refs"

[models."phala/qwen3.5-27b"]
aliases = ["Qwen/Qwen3.5-27B"]

[[models."phala/qwen3.5-27b".app]]
app_id = "0101010101010101010101010101010101010101"
source = "gateway https://gw.example/v1/models/phala at 2026-12-02T06:00:00Z"
added_at = 1796000000
note = "trust on first use"

[[models."Qwen/Other".app]]
compose_hash = "1111111111111111111111111111111111111111111111111111111111111111"
source = "verdict v_01"
added_at = 2026-12-02T06:00:00Z

[[models."*".os_image]]
hash = "2121212121212121212121212121212121212121212121212121212121212121"
source = "manual: from the release notes"
added_at = 1796000000

[[models."*".boot_chain]]
mrtd = "{m0}"
rtmr0 = "{m1}"
rtmr1 = "{m2}"
rtmr2 = "{m3}"
source = "manual"
added_at = 0
""".replace("{m0}", M[0].hex())
    .replace("{m1}", M[1].hex())
    .replace("{m2}", M[2].hex())
    .replace("{m3}", M[3].hex())
)


def refs(text: str = BASE) -> Refs:
    return parse_refs(text.encode(), source="t.toml")


def rejected(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        refs(text)
    assert info.value.message.startswith("t.toml: "), info.value.message
    return info.value.message


# ---------------------------------------------------------------------------------------------- loading


def test_refs_id_and_sha256_of_the_exact_file_bytes(tmp_path: Any) -> None:
    path = tmp_path / "r.toml"
    path.write_bytes(BASE.encode())
    a, b = load_refs(path), parse_refs(BASE.encode() + b"\n", source="b.toml")
    assert a.id == "t" and a.description == "test refs" and a.source == str(path)
    assert a.sha256 == hashlib.sha256(BASE.encode()).hexdigest()
    assert a == b and a.sha256 != b.sha256  # same values, different bytes


def test_missing_unreadable_or_non_toml_files_are_config_errors(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="cannot read refs file"):
        load_refs(tmp_path / "absent.toml")
    assert "not valid TOML" in rejected("[refs\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_refs(b"\xff\xfe", source="t.toml")


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ('[refs]\nid = "t"\ncolour = 1\n', "refs.colour"),
        ('[refs]\nid = "t"\n[extra]\n', "extra"),
        ('[refs]\nid = "t"\n[models.m]\napp_ids = []\n', 'models."m".app_ids'),
        (
            '[refs]\nid = "t"\n[[models.m.app]]\napp_id = "'
            + "01" * 20
            + '"\nsource = "manual"\nadded_at = 0\nby = "me"\n',
            'models."m".app[0].by',
        ),
        (
            '[refs]\nid = "t"\n[[models.m.os_image]]\nhash = "'
            + "01" * 32
            + '"\nsource = "manual"\nadded_at = 0\nhashes = 1\n',
            'models."m".os_image[0].hashes',
        ),
    ],
)
def test_unknown_key_is_rejected_naming_the_key(text: str, names: str) -> None:
    message = rejected(text)
    assert names in message and "unknown key" in message


@pytest.mark.parametrize(
    ("field", "value", "expect"),
    [
        ("app_id", '"zz' + "01" * 19 + '"', "is not hex"),
        ("app_id", '"' + "01" * 19 + '"', "got 19 bytes, expected 20"),
        ("app_id", "12", "expected a hex string of 20 bytes"),
        ("compose_hash", '"' + "01" * 20 + '"', "got 20 bytes, expected 32"),
        ("compose_hash", '"0x' + "01" * 31 + '0"', "is not hex"),
    ],
)
def test_bad_hex_and_wrong_lengths_name_the_key(field: str, value: str, expect: str) -> None:
    message = rejected(f'[refs]\nid = "t"\n[[models.m.app]]\n{field} = {value}\nsource = "manual"\nadded_at = 0\n')
    assert f'models."m".app[0].{field}' in message and expect in message


def test_boot_chain_measurements_are_48_bytes_and_mrseam_is_checked_too() -> None:
    chain = "".join(f'{k} = "{M[0].hex()}"\n' for k in ("mrtd", "rtmr0", "rtmr1"))
    message = rejected(
        f'[refs]\nid = "t"\n[[models."*".boot_chain]]\n{chain}rtmr2 = "{"00" * 32}"\nsource = "manual"\nadded_at = 0\n'
    )
    assert 'models."*".boot_chain[0].rtmr2: got 32 bytes, expected 48' in message
    message = rejected(f'[refs]\nid = "t"\n[[models."*".boot_chain]]\n{chain}source = "manual"\nadded_at = 0\n')
    assert "boot_chain[0].rtmr2: missing" in message
    message = rejected(
        f'[refs]\nid = "t"\n[[models."*".boot_chain]]\n{chain}rtmr2 = "{M[1].hex()}"\nmrseam = "ab"\n'
        'source = "manual"\nadded_at = 0\n'
    )
    assert "boot_chain[0].mrseam: got 1 bytes, expected 48" in message


def test_an_app_entry_needs_an_app_id_or_a_compose_hash() -> None:
    assert "needs app_id, compose_hash or both" in rejected(
        '[refs]\nid = "t"\n[[models.m.app]]\nsource = "manual"\nadded_at = 0\n'
    )


@pytest.mark.parametrize(
    ("source", "ok"),
    [
        ("gateway https://x/v1/models at 2026-12-02T06:00:00Z", True),
        ("verdict v_01", True),
        ("manual", True),
        ("manual: copied from the vendor", True),
        ("gateway https://x", False),
        ("trust me", False),
        ("verdict ", False),
        ("manual:", False),
    ],
)
def test_source_names_a_gateway_list_a_verdict_or_manual(source: str, ok: bool) -> None:
    text = f'[refs]\nid = "t"\n[[models.m.app]]\napp_id = "{"01" * 20}"\nsource = {json.dumps(source)}\nadded_at = 0\n'
    if ok:
        assert refs(text).models[0].apps[0].provenance.source == source
    else:
        assert 'models."m".app[0].source' in rejected(text)


def test_added_at_is_unix_seconds_or_an_offset_date_time() -> None:
    r = refs()
    assert r.for_model("Qwen/Other").apps[0].provenance.added_at == 1796191200  # 2026-12-02T06:00:00Z
    row = f'[refs]\nid = "t"\n[[models.m.app]]\napp_id = "{"01" * 20}"\nsource = "manual"\nadded_at = '
    assert "has no time zone" in rejected(row + "2026-12-02T06:00:00\n")
    assert "out of range" in rejected(row + "-1\n")
    assert "expected unix seconds" in rejected(row + "true\n")
    assert "expected unix seconds" in rejected(row + "2026-12-02\n")


def test_every_name_belongs_to_one_model_only() -> None:
    head = '[refs]\nid = "t"\n'
    assert "same model" in rejected(head + '[models."Qwen/X"]\n[models."qwen/x"]\n')
    assert "already the name or an alias" in rejected(
        head + '[models.a]\naliases = ["x"]\n[models.b]\naliases = ["X"]\n'
    )
    assert "already the name or an alias" in rejected(head + '[models.a]\naliases = ["b"]\n[models.b]\n')
    assert "the model itself or listed twice" in rejected(head + '[models.a]\naliases = ["A"]\n')
    assert '"*" stands for every model' in rejected(head + '[models."*"]\naliases = ["x"]\n')
    assert '"*" cannot be an alias' in rejected(head + '[models.a]\naliases = ["*"]\n')


def test_the_same_entry_twice_is_rejected() -> None:
    entry = f'[[models.m.app]]\napp_id = "{"01" * 20}"\nsource = "manual"\nadded_at = 0\n'
    assert 'models."m".app[1]: duplicates an earlier entry' in rejected('[refs]\nid = "t"\n' + entry + entry)


def test_refs_id_is_required_and_not_empty() -> None:
    assert "refs.id: missing" in rejected("[refs]\n")
    assert "refs.id: must not be empty" in rejected('[refs]\nid = " "\n')
    assert "refs: missing" in rejected("[models.m]\n")


# ---------------------------------------------------------------------------------------------- lookups


def test_for_model_merges_its_group_and_star_case_insensitively() -> None:
    r = refs()
    for name in ("phala/qwen3.5-27b", "PHALA/Qwen3.5-27B", "qwen/qwen3.5-27b"):
        m = r.for_model(name)
        assert m.app_ids == {A1} and m.compose_hashes == set()
        assert m.os_image_hashes == {O1} and [b.mrtd for b in m.boot_chains] == [M[0]]
        assert m.apps[0].provenance.note == "trust on first use" and m.apps[0].model == "phala/qwen3.5-27b"
        assert m.boot_chains[0].model == "*"
    other = r.for_model("unknown/model")
    assert other.apps == () and other.os_image_hashes == {O1} and other.names == {"unknown/model"}


def test_names_for_is_the_model_and_its_aliases_lowercased() -> None:
    r = refs()
    assert r.names_for("Qwen/Qwen3.5-27B") == {"phala/qwen3.5-27b", "qwen/qwen3.5-27b"}
    assert r.names_for("phala/qwen3.5-27b") == r.names_for("Qwen/Qwen3.5-27B")
    assert r.names_for("Nobody/Else") == {"nobody/else"}
    assert r.group_key("qwen/QWEN3.5-27b") == "phala/qwen3.5-27b" and r.group_key("x") is None


def test_an_app_entry_matches_only_when_every_field_it_pins_matches() -> None:
    pair = AppRef(app_id=A1, compose_hash=C1, provenance=MANUAL)
    assert pair.matches(A1, C1) and not pair.matches(A1, C2) and not pair.matches(None, C1)
    assert AppRef(app_id=A1, compose_hash=None, provenance=MANUAL).matches(A1, C2)
    assert AppRef(app_id=None, compose_hash=C1, provenance=MANUAL).matches(A2, C1)
    assert not AppRef(app_id=A1, compose_hash=None, provenance=MANUAL).matches(None, None)


def test_a_boot_chain_matches_all_four_registers_and_mrseam_only_when_pinned() -> None:
    chain = BootChainRef(mrtd=M[0], rtmr0=M[1], rtmr1=M[2], rtmr2=M[3], provenance=MANUAL)
    assert chain.matches(M[0], M[1], M[2], M[3], M[5]) and chain.matches(M[0], M[1], M[2], M[3], None)
    assert not chain.matches(M[0], M[1], M[2], M[4], M[5])
    seam = BootChainRef(mrtd=M[0], rtmr0=M[1], rtmr1=M[2], rtmr2=M[3], provenance=MANUAL, mrseam=M[5])
    assert seam.matches(M[0], M[1], M[2], M[3], M[5]) and not seam.matches(M[0], M[1], M[2], M[3], M[4])


def test_with_model_revalidates_and_drops_emptied_tables() -> None:
    r = refs()
    added = with_model(
        r, ModelEntry(name="new/model", aliases=("n",), apps=(AppRef(app_id=A2, compose_hash=None, provenance=MANUAL),))
    )
    assert added.for_model("N").app_ids == {A2} and added.sha256 and added != r
    assert with_model(added, ModelEntry(name="NEW/model")) == r  # emptied: the table goes
    with pytest.raises(ConfigError, match="already the name or an alias"):
        with_model(r, ModelEntry(name="x", aliases=("Qwen/Qwen3.5-27B",)))


# ---------------------------------------------------------------------------------------------- writing


def test_dump_writes_lowercase_hex_without_0x_and_parses_back_equal() -> None:
    text = BASE.replace('app_id = "01', 'app_id = "0x01').replace("2121", "2121".upper(), 1)
    r = refs(text)
    dumped = dump_refs(r)
    assert "0x" not in dumped and r.for_model("*").os_images[0].hash.hex() in dumped
    assert parse_refs(dumped.encode(), source="d.toml") == r == refs()


_names = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12).filter(
    lambda s: s.strip() != "" and s.strip() != "*"
)
_time = st.integers(0, 253402300799)
_sources = st.one_of(
    st.just("manual"),
    st.text(min_size=1, max_size=20).filter(str.strip).map(lambda t: "manual: " + t),
    st.from_regex(r"verdict [A-Za-z0-9_]{1,20}", fullmatch=True),
    st.from_regex(
        r"gateway https://[a-z]{1,8}\.example/v1/models(/phala)? at 2026-12-0[1-9]T0[0-9]:00:00Z", fullmatch=True
    ),
)
_prov = st.builds(Provenance, source=_sources, added_at=_time, note=st.text(max_size=20))
_b = st.binary


def _app(draw: Any) -> AppRef:
    app_id, compose = draw(
        st.one_of(
            st.tuples(_b(min_size=20, max_size=20), st.none()),
            st.tuples(st.none(), _b(min_size=32, max_size=32)),
            st.tuples(_b(min_size=20, max_size=20), _b(min_size=32, max_size=32)),
        )
    )
    return AppRef(app_id=app_id, compose_hash=compose, provenance=draw(_prov))


@st.composite
def valid_refs(draw: Any) -> Refs:
    names = draw(st.lists(_names, max_size=6, unique_by=str.lower))
    models = []
    while names:
        k = draw(st.integers(0, len(names) - 1))
        group, names = names[: k + 1], names[k + 1 :]
        models.append((group[0], tuple(group[1:])))
    if draw(st.booleans()):
        models.append(("*", ()))
    entries = []
    for name, aliases in models:
        h48 = _b(min_size=48, max_size=48)
        entries.append(
            ModelEntry(
                name=name,
                aliases=aliases,
                apps=tuple(draw(st.lists(st.composite(lambda d: _app(d))(), max_size=3, unique_by=lambda a: a.value))),
                os_images=tuple(
                    draw(
                        st.lists(
                            st.builds(OsImageRef, hash=_b(min_size=32, max_size=32), provenance=_prov),
                            max_size=2,
                            unique_by=lambda o: o.value,
                        )
                    )
                ),
                boot_chains=tuple(
                    draw(
                        st.lists(
                            st.builds(
                                BootChainRef,
                                mrtd=h48,
                                rtmr0=h48,
                                rtmr1=h48,
                                rtmr2=h48,
                                provenance=_prov,
                                mrseam=st.none() | h48,
                            ),
                            max_size=2,
                            unique_by=lambda b: b.value,
                        )
                    )
                ),
            )
        )
    return Refs(
        id=draw(_names), models=tuple(e for e in entries if not e.empty), description=draw(st.text(max_size=30))
    )


@given(valid_refs())
def test_dump_then_parse_round_trips_any_valid_refs(r: Refs) -> None:
    again = parse_refs(dump_refs(r).encode(), source="p.toml")
    assert again == r
    assert parse_refs(dump_refs(again).encode(), source="p.toml").sha256 == again.sha256


@given(st.binary(max_size=400))
def test_arbitrary_bytes_load_or_raise_config_error(data: bytes) -> None:
    with contextlib.suppress(ConfigError):
        parse_refs(data, source="fuzz.toml")


_words = st.sampled_from(
    [
        "refs",
        "id",
        "description",
        "models",
        "m",
        "*",
        "aliases",
        "app",
        "os_image",
        "boot_chain",
        "app_id",
        "compose_hash",
        "hash",
        "mrtd",
        "rtmr0",
        "rtmr1",
        "rtmr2",
        "mrseam",
        "source",
        "added_at",
        "note",
        "x",
    ]
)
_leaf = st.one_of(
    st.integers(-5, 2**40),
    st.booleans(),
    st.sampled_from(["manual", "01" * 20, "01" * 32, "01" * 48, "", "*"]),
    st.datetimes(),
    st.text(max_size=8),
)
_docs = st.recursive(
    _leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_words, inner, max_size=4), max_leaves=20
)


@given(st.dictionaries(_words, _docs, max_size=3))
def test_arbitrary_documents_load_or_raise_config_error(doc: dict[str, Any]) -> None:
    try:
        text = tomli_w.dumps(doc)
    except (TypeError, ValueError):
        return  # not representable as TOML (e.g. mixed arrays tomli-w refuses)
    with contextlib.suppress(ConfigError):
        parse_refs(text.encode(), source="fuzz.toml")


# ---------------------------------------------------------------------------------------------- simulator refs


def test_shipped_simulator_refs_are_the_simulator_cvm_identity() -> None:
    world = SimulatorWorld()
    ident = world.identity
    r = simulator_refs()
    m = r.for_model("sim/echo-1")
    expected = {
        "app": [(ident.app_id.hex(), ident.compose_hash.hex())],
        "os_image": [ident.os_image_hash.hex()],
        "boot_chain": [tuple(x.hex() for x in (ident.mr_td, *ident.rtmrs[:3], world.mr_seam))],
    }
    got = {
        "app": [
            (a.app_id.hex() if a.app_id else None, a.compose_hash.hex() if a.compose_hash else None) for a in m.apps
        ],
        "os_image": [o.hash.hex() for o in m.os_images],
        "boot_chain": [tuple(x.hex() for x in (*b.value[:4], b.mrseam or b"")) for b in m.boot_chains],
    }
    assert got == expected, f"verifier/refs/simulator.toml is stale; the simulator now attests {expected}"
    assert r.id == "simulator" and r.for_model("sim/other-1").apps == ()  # other models show an unpinned app


# ---------------------------------------------------------------------------------------------- pull plan


def _pulled(*items: tuple[str, bytes], url: str = GW + "/v1/models/phala") -> list[Published]:
    return [Published(model=m, app_id=a, url=url) for m, a in items]


def test_pull_plan_records_a_new_app_id_with_gateway_provenance() -> None:
    r = refs('[refs]\nid = "t"\n')
    plan = plan_pull(r, _pulled(("phala/m", A1)), gateway=GW + "/", now=1796191200)
    assert [(c.model, c.kind, c.added) for c in plan.changes] == [("phala/m", "new", (A1,))]
    app = plan.refs.for_model("phala/m").apps[0]
    assert (app.app_id, app.compose_hash) == (A1, None)
    assert app.provenance == Provenance(
        source=f"gateway {GW}/v1/models/phala at 2026-12-02T06:00:00Z", added_at=1796191200, note=TOFU_NOTE
    )


def test_pull_plan_keeps_the_first_use_provenance_of_an_unchanged_app_id() -> None:
    r = refs()
    plan = plan_pull(r, _pulled(("Qwen/Qwen3.5-27B", A1), url=GW + "/v1/models"), gateway=GW, now=1900000000)
    assert [c.kind for c in plan.changes] == ["unchanged"] and plan.pending == () and plan.refs == r


def test_pull_plan_replaces_a_changed_app_id_of_this_gateway_only() -> None:
    extra = (
        '[[models."phala/qwen3.5-27b".app]]\napp_id = "'
        + A3.hex()
        + '"\nsource = "gateway https://other.example/v1/models at '
        '2026-01-01T00:00:00Z"\nadded_at = 0\n[[models."phala/qwen3.5-27b".app]]\napp_id = "'
        + A1.hex()
        + '"\ncompose_hash = "'
        + C1.hex()
        + '"\nsource = "verdict v_9"\nadded_at = 0\n'
    )
    r = refs(BASE + extra)
    plan = plan_pull(r, _pulled(("phala/qwen3.5-27b", A2)), gateway=GW, now=1900000000)
    [change] = plan.changes
    assert change.kind == "changed" and change.added == (A2,) and [a.app_id for a in change.removed] == [A1]
    apps = plan.refs.for_model("phala/qwen3.5-27b").apps
    assert {(a.app_id, a.compose_hash, a.provenance.kind) for a in apps} == {
        (A3, None, "gateway"),
        (A1, C1, "verdict"),
        (A2, None, "gateway"),
    }


def test_pull_plan_removes_this_gateways_pin_of_a_model_it_no_longer_lists() -> None:
    r = refs()
    plan = plan_pull(r, _pulled(("other/model", A2)), gateway=GW, now=1900000000)
    kinds = {c.model: c.kind for c in plan.changes}
    assert kinds == {"other/model": "new", "phala/qwen3.5-27b": "removed"}
    assert plan.refs.for_model("phala/qwen3.5-27b").apps == ()
    assert plan.refs.names_for("Qwen/Qwen3.5-27B") == {"phala/qwen3.5-27b", "qwen/qwen3.5-27b"}  # aliases stay
    assert plan_pull(r, [], gateway="https://unrelated.example", now=0).changes == ()


def test_pull_plan_never_pins_the_wildcard_and_skips_ids_already_pinned_on_their_own() -> None:
    r = refs('[refs]\nid = "t"\n[[models.m.app]]\napp_id = "' + A1.hex() + '"\nsource = "manual"\nadded_at = 0\n')
    plan = plan_pull(r, _pulled(("*", A2), ("M", A1)), gateway=GW, now=0)
    assert plan.ignored == ("*",) and [(c.model, c.kind, c.listed, c.kept) for c in plan.changes] == [
        ("m", "unchanged", (A1,), ())
    ]
    assert plan.refs == r


# ---------------------------------------------------------------------------------------------- drift


def _ident(**kw: Any) -> AttestedIdentity:
    base: dict[str, Any] = {
        "path": "$",
        "mrtd": M[0],
        "rtmr0": M[1],
        "rtmr1": M[2],
        "rtmr2": M[3],
        "mrseam": M[5],
        "app_id": A1,
        "compose_hash": C1,
        "os_image_hash": O1,
    }
    return AttestedIdentity(**(base | kw))


def test_judge_pins_an_identity_whose_app_and_boot_chain_are_in_the_refs() -> None:
    p = judge(refs().for_model("phala/qwen3.5-27b"), _ident())
    assert (p.app, p.os_image, p.boot_chain, p.drift) == (PINNED, PINNED, PINNED, False)


def test_judge_reports_a_changed_boot_chain_or_app_as_drift() -> None:
    m = refs().for_model("phala/qwen3.5-27b")
    p = judge(m, _ident(rtmr2=M[4]))
    assert (p.boot_chain, p.drift) == (CHANGED, True)
    p = judge(m, _ident(app_id=A2))
    assert (p.app, p.drift) == (CHANGED, True)
    p = judge(refs().for_model("Qwen/Other"), _ident(compose_hash=C2))  # the pin is a compose hash
    assert (p.app, p.drift) == (CHANGED, True)


def test_judge_needs_a_pinned_app_and_a_pinned_boot_chain_or_os_image() -> None:
    only_app = refs(
        '[refs]\nid = "t"\n[[models.m.app]]\napp_id = "' + A1.hex() + '"\nsource = "manual"\nadded_at = 0\n'
    )
    p = judge(only_app.for_model("m"), _ident())
    assert (p.app, p.os_image, p.boot_chain, p.drift) == (PINNED, NOT_PINNED, NOT_PINNED, True)
    image = refs(BASE.split('[[models."*".boot_chain]]')[0]).for_model("phala/qwen3.5-27b")
    assert judge(image, _ident()).drift is False  # the OS image is pinned: enough for the boot side
    p = judge(refs().for_model("nobody"), _ident(os_image_hash=None))
    assert (p.app, p.os_image, p.boot_chain, p.drift) == (NOT_PINNED, NOT_RECORDED, PINNED, True)


def _verdict(checks: dict[str, tuple[str, str | None]], claims: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "v_1",
        "status": "indeterminate",
        "claims": claims,
        "checks": [{"id": k, "status": s, "reason": r, "severity": "required"} for k, (s, r) in checks.items()],
    }


def test_attested_identities_come_only_from_a_verified_quote_and_event_log() -> None:
    quote = {"mr_td": M[0].hex(), "rtmr0": M[1].hex(), "rtmr1": M[2].hex(), "rtmr2": M[3].hex(), "mr_seam": M[5].hex()}
    claims = {
        "tdx": {"$": quote},
        "app": {"$": {"app_id": A1.hex(), "compose_hash": C1.hex(), "os_image_hash": O1.hex()}},
    }
    ok = {"tdx.quote": ("pass", None), "tdx.event_log": ("pass", None)}
    assert attested_identities(_verdict(ok, claims)) == (_ident(),)
    no_log = attested_identities(_verdict(ok | {"tdx.event_log": ("fail", "event_log_mismatch")}, claims))
    assert no_log == (_ident(app_id=None, compose_hash=None, os_image_hash=None),)
    assert attested_identities(_verdict(ok | {"tdx.quote": ("fail", "quote_signature_invalid")}, claims)) == ()
    with pytest.raises(ValueError, match="lacks MRTD"):
        attested_identities(_verdict(ok, {"tdx": {"$": quote | {"rtmr1": "00"}}}))


def test_blocking_checks_ignore_only_missing_or_different_pins() -> None:
    v = _verdict(
        {
            "tdx.app": ("fail", "app_id_not_allowed"),
            "tdx.identity": ("indeterminate", "identity_not_pinned"),
            "gpu.nras": ("fail", "nras_result_false"),
            "tdx.quote": ("pass", None),
        },
        {},
    )
    assert blocking_checks(v) == ["gpu.nras: fail (nras_result_false)"]


# ---------------------------------------------------------------------------------------------- model list


def _listing(*models: dict[str, Any]) -> bytes:
    return json.dumps({"object": "list", "data": list(models)}).encode()


def test_model_list_reads_ids_providers_and_metadata_appid() -> None:
    body = _listing(
        {"id": "phala/m", "providers": ["phala"], "metadata": {"appid": "0x" + A1.hex().upper()}, "pricing": {}},
        {"id": "near/m", "metadata": {}},
        {"id": "x", "providers": None, "metadata": None},
    )
    got = parse_model_list(body, url="u")
    assert [(m.id, m.app_id, m.providers) for m in got.models] == [
        ("phala/m", A1, ("phala",)),
        ("near/m", None, ()),
        ("x", None, ()),
    ]


@pytest.mark.parametrize(
    ("body", "expect"),
    [
        (b"<html>", "not JSON"),
        (b"[]", '{"data"'),
        (b'{"data": {}}', '{"data"'),
        (_listing("m"), "data[0] is not an object"),
        (_listing({"id": ""}), "data[0].id"),
        (_listing({"id": "m", "providers": "phala"}), "providers"),
        (_listing({"id": "m", "metadata": []}), "metadata"),
        (_listing({"id": "m", "metadata": {"appid": "abc"}}), "metadata.appid"),
        (_listing({"id": "m", "metadata": {"appid": 7}}), "metadata.appid"),
    ],
)
def test_a_wrong_shape_model_list_is_upstream_garbled(body: bytes, expect: str) -> None:
    with pytest.raises(UpstreamError) as info:
        parse_model_list(body, url="http://gw/v1/models")
    assert (
        info.value.reason == "upstream_garbled"
        and expect in info.value.message
        and "http://gw/v1/models" in info.value.message
    )


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=string.hexdigits + "xz", max_size=42),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["data", "id", "metadata", "appid", "providers", "x"]), inner, max_size=3)
    ),
    max_leaves=15,
)


@given(st.one_of(_json.map(lambda v: json.dumps(v).encode()), st.binary(max_size=60)))
def test_any_model_list_body_parses_or_is_upstream_garbled(body: bytes) -> None:
    try:
        parse_model_list(body, url="u")
    except UpstreamError as exc:
        assert exc.reason == "upstream_garbled"
