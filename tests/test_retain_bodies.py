"""`--retain-bodies hashes`: the prompts and answers are not stored; the bundle keeps their sha256 instead."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from web_env import completion, start

from verifier.app.keys import Role
from verifier.evidence.bundle import Bundle, BundleError


async def test_with_hashes_the_bundle_keeps_the_sha256_and_never_the_bytes(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    env = await start(aiohttp_client, aiohttp_server, tmp_path, retain_bodies="hashes")
    marker = "PRIVATE-PROMPT-7d1e"
    request, response = await completion(env, marker)
    resp = await env.client.post(
        "/v1/verifications",
        headers=env.auth(Role.SUBMIT),
        json={
            "request": request.decode(),
            "response": response.decode(),
            "model": "sim/echo-1",
            "gateway": env.gateway_url,
        },
    )
    assert resp.status == 201
    verdict = await resp.json()
    assert verdict["status"] == "pass"  # judged on the bytes, before they were dropped
    assert "bodies_not_retained" in {n["code"] for n in verdict["notes"]}
    zipped = await (await env.client.get(f"/v1/verifications/{verdict['id']}/bundle", headers=env.auth())).read()
    files = {n: zipfile.ZipFile(io.BytesIO(zipped)).read(n) for n in zipfile.ZipFile(io.BytesIO(zipped)).namelist()}
    assert "request.body" not in files and "response.body" not in files
    assert (
        files["request.sha256"].decode().strip()
        == hashlib.sha256(request).hexdigest()
        == verdict["subject"]["request_sha256"]
    )
    assert files["response.sha256"].decode().strip() == hashlib.sha256(response).hexdigest()
    for place in (env.db_path.read_bytes(), zipped):
        assert marker.encode() not in place
    stored = await (await env.client.get(f"/v1/verifications/{verdict['id']}", headers=env.auth())).json()
    assert stored["notes"] == verdict["notes"]


def test_a_bundle_round_trips_its_body_hashes() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    bundle = Bundle.from_files({"request.sha256": digest.encode() + b"\n", "response.sha256": digest.upper().encode()})
    assert bundle.request is None and bundle.request_sha256 == digest and bundle.response_sha256 == digest
    assert Bundle.from_files(bundle.files()) == bundle


@pytest.mark.parametrize(
    ("files", "needle"),
    [
        ({"request.sha256": b"zz"}, "64 hex"),
        ({"response.sha256": b"00" * 33}, "64 hex"),
        ({"request.sha256": b"00" * 32, "request.body": b"x"}, "both"),
    ],
)
def test_a_bad_body_hash_file_is_a_bundle_error(files: dict[str, bytes], needle: str) -> None:
    with pytest.raises(BundleError, match=needle):
        Bundle.from_files(files)
