"""Signed, portable results over HTTP: the EAR verifies with PyJWT against the served JWKS and carries the expected
claims; the log's checkpoint, inclusion and consistency proofs verify with nothing but the log key."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from web_env import NOW, Env, post, start, valid

from verifier.app.ear import EAR_PROFILE
from verifier.app.keys import Role
from verifier.core.checkpoint import NoteVerifier, verify_checkpoint
from verifier.core.merkle import leaf_hash, verdict_entry, verify_consistency, verify_inclusion


@pytest.fixture
async def env(aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[Env]:
    yield await start(
        aiohttp_client,
        aiohttp_server,
        tmp_path,
        log_key_path=str(tmp_path / "log.pem"),
        ear_key_path=str(tmp_path / "ear.pem"),
    )


async def _text(env: Env, path: str, role: Role | None = Role.READ) -> str:
    resp = await env.client.get(path, headers=env.auth(role) if role else {})
    assert resp.status == 200, await resp.text()
    return await resp.text()


async def test_the_ear_verifies_with_pyjwt_against_the_served_jwks_and_carries_the_claims(env: Env) -> None:
    for name in ("log.pem", "ear.pem"):  # made at first start, private to the service's user
        assert (env.db_path.parent / name).stat().st_mode & 0o777 == 0o600
    verdict = await (await post(env)).json()
    token = await _text(env, f"/v1/verifications/{verdict['id']}/ear")
    jwks = await (await env.client.get("/.well-known/jwks.json")).json()
    valid(jwks, "Jwks")
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(token, key.key, algorithms=["EdDSA"])
    assert claims["eat_profile"] == EAR_PROFILE == "tag:ietf.org,2026:rats/ear#04"
    assert claims["iat"] == NOW and set(claims["ear_verifier_id"]) == {"developer", "build"}
    assert base64.urlsafe_b64decode(claims["eat_nonce"] + "==").hex() == verdict["nonce"]["value"]
    assert claims["x-verifier-verdict-id"] == verdict["id"] and claims["x-verifier-log-index"] == 0
    submods = claims["submods"]
    assert "signature" in submods and any(k.startswith("td:") for k in submods)
    policy_id = f"policy:{verdict['policy']['id']}@sha256:{verdict['policy']['sha256']}"
    for sub in submods.values():
        assert sub["ear_status"] == "affirming"  # the simulator's passing verdict
        assert policy_id in sub["ear_appraisal_policy_ids"]
        for aspect, value in sub["ear_trustworthiness_vector"].items():
            assert value == verdict["trust_vector"][aspect]["value"]


async def test_the_log_proves_a_recorded_verdict_with_only_the_log_key(env: Env) -> None:
    first = await (await post(env)).json()
    second = await (await post(env)).json()
    vkey = NoteVerifier.from_vkey(await _text(env, "/v1/log/key", None))
    checkpoint = verify_checkpoint(await _text(env, "/v1/log/checkpoint"), vkey, origin=vkey.name)
    assert checkpoint.size == 2
    for index, verdict in enumerate((first, second)):
        resp = await env.client.get(f"/v1/log/proof/{verdict['id']}?size=2", headers=env.auth(Role.READ))
        proof = await resp.json()
        valid(proof, "InclusionProof")
        assert proof["log_index"] == index and verify_checkpoint(proof["checkpoint"], vkey) == checkpoint
        stored = await (await env.client.get(f"/v1/verifications/{verdict['id']}", headers=env.auth(Role.READ))).json()
        verify_inclusion(
            index,
            2,
            leaf_hash(verdict_entry(stored)),
            [base64.b64decode(p) for p in proof["inclusion_path"]],
            checkpoint.root,
        )
    old = verify_checkpoint(
        (await (await env.client.get(f"/v1/log/proof/{first['id']}?size=1", headers=env.auth(Role.READ))).json())[
            "checkpoint"
        ],
        vkey,
    )
    body = await (await env.client.get("/v1/log/consistency?from=1&to=2", headers=env.auth(Role.READ))).json()
    valid(body, "ConsistencyProof")
    verify_consistency(1, 2, old.root, checkpoint.root, [base64.b64decode(p) for p in body["consistency_path"]])


async def test_bad_log_queries_are_400_or_404(env: Env) -> None:
    verdict = await (await post(env)).json()
    for path, status in (
        (f"/v1/log/proof/{verdict['id']}?size=2", 400),
        (f"/v1/log/proof/{verdict['id']}?size=x", 400),
        ("/v1/log/proof/v_00000000000000000000000000", 404),
        ("/v1/log/consistency?from=0", 400),
        ("/v1/log/consistency?from=1&to=5", 400),
        (f"/v1/log/proof/{verdict['id']}?sizes=1", 400),
    ):
        resp = await env.client.get(path, headers=env.auth(Role.READ))
        assert resp.status == status, path
        valid(await resp.json(), "Error")


async def test_a_submit_key_gets_the_ear_of_its_own_verdicts_only(env: Env) -> None:
    verdict = await (await post(env, role=Role.ADMIN)).json()
    resp = await env.client.get(f"/v1/verifications/{verdict['id']}/ear", headers=env.auth(Role.SUBMIT))
    assert resp.status == 404


async def test_a_log_origin_that_is_no_key_name_is_a_config_error(tmp_path: Path) -> None:
    from verifier.app.services import open_services
    from verifier.core.errors import ConfigError
    from verifier.demo import simulator_settings

    settings = simulator_settings(tmp_path / "v.db", "http://127.0.0.1:1", log_origin="has space")
    with pytest.raises(ConfigError, match="log_origin"):
        async with open_services(settings):
            pass
