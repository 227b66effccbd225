"""A simulated confidential-AI gateway on loopback: RedPill-shaped endpoints over simulator evidence.

Routes (docs/protocol.md §1-§3): ``POST /v1/chat/completions`` (JSON or SSE, an echo model),
``GET /v1/signature/{id}`` (ecdsa EIP-191 and ed25519, text ``req:resp`` or ``model:req:resp``
over the exact bytes), ``GET /v1/attestation/report`` (binds the requested nonce and the signer;
formats ``phala_flat``, ``near_two_layer``, ``aci_legacy``), ``GET /v1/models`` and
``GET /v1/models/phala`` (``metadata.appid`` = the CVM's app id); plus a PCCS
(``verifier.simulator.pcs``) and an NRAS (``/v3/attest/gpu``, ``/.well-known/jwks.json``).

Fault knobs (``FAULTS``) make it misbehave the ways real gateways do, per run.

``SimulatorConfig(tls=True)``: served over loopback TLS (``verifier.simulator.tls``; serve ``app()`` with
``ssl_context()``), by ``tls_replicas`` replicas that each hold their own TLS key behind one listener (round robin per
connection). Asked with ``include_tls_fingerprint=true`` or ``version=2`` over TLS, a report is in the TLS-fingerprint
layout (protocol.md §4): it attests the key of the replica that terminated the connection it was fetched on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import secrets
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from verifier.simulator.eth_key import EthKey
from verifier.simulator.event_log import ATTACKS
from verifier.simulator.pcs import add_pcs_routes
from verifier.simulator.tls import SimulatorTls
from verifier.simulator.world import SimulatorWorld

FORMATS = ("phala_flat", "near_two_layer", "aci_legacy")
FAULTS = {
    "substituted_nonce": "the report binds a nonce the gateway chose, not ours",
    "replayed_report": "the report is a recording: the same bytes whatever nonce is asked",
    "reserialized_response": "the signed response hash is over a Python json.dumps re-serialization, not the bytes "
    "sent",
    "signature_other_text": "the signature is over another text than the one returned",
    "wrong_signer": "the response is signed by a key that no attestation in the report holds",
    "debug_td": "the quote is from a debug TD",
    "expired_collateral": "the PCCS serves collateral past its nextUpdate",
    "gpu_nonce_mismatch": "the GPU evidence answers another nonce",
    "nras_failure": "NRAS answers with a failure token (NONCE_NOT_MATCHING)",
    "report_5xx": "the report endpoint answers 503",
    "report_429": "the report endpoint answers 429",
    "report_timeout": "the report endpoint never answers in time",
    "report_slow_body": "the report body trickles in slower than any timeout",
    "report_garbled": "the report endpoint answers 200 with an HTML page",
    "signature_expired": "the signature endpoint answers 404 (not found or expired)",
    "signed_other_model": "the signed text names another (cheaper) model than the one requested (3-part texts)",
    "attested_other_model": "the model attestation is for another model than the one requested (NEAR two-layer)",
    "fallback_model": "the completion is served by a fallback model (x-model-used, x-fallback-from, the body's model)",
    "tls_other_replica": "(with --tls) two replicas behind a load balancer, and the completion's connection is closed: "
    "the signature and report come from the other replica, whose report attests its own TLS key",
    "tls_wrong_fingerprint": "(with --tls) the report attests a TLS key that no replica presents",
}
TLS_FAULTS = frozenset({"tls_other_replica", "tls_wrong_fingerprint"})
TLS_LAYOUT_PARAMS = (("include_tls_fingerprint", "true"), ("version", "2"))  # what asks for the TLS layout
FALLBACK_MODEL = "sim/fallback-1"


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    report_format: str = "phala_flat"
    three_part_text: bool = False  # NEAR inference-proxy style "model:req:resp"
    gpu_count: int = 1
    faults: frozenset[str] = frozenset()
    clock: Callable[[], float] = time.time
    hang_seconds: float = 30.0
    # the CVM's dstack boot: GPU boot events for gpu_count GPUs, and event-log attacks (simulator.event_log.ATTACKS)
    dstack_gpu_events: bool = False
    event_log_attacks: frozenset[str] = frozenset()
    # loopback TLS (``SimulatedGateway.ssl_context``): replicas behind one listener, each with its own TLS key
    tls: bool = False
    tls_replicas: int = 1

    def __post_init__(self) -> None:
        if self.report_format not in FORMATS:
            raise ValueError(f"report_format {self.report_format!r}: expected one of {FORMATS}")
        unknown = set(self.faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {sorted(FAULTS)}")
        unknown = set(self.event_log_attacks) - set(ATTACKS)
        if unknown:
            raise ValueError(f"unknown event-log attacks {sorted(unknown)}; known: {sorted(ATTACKS)}")
        if self.faults & TLS_FAULTS and not self.tls:
            raise ValueError(f"faults {sorted(self.faults & TLS_FAULTS)} need tls=True (--tls)")
        if self.tls_replicas < 1:
            raise ValueError("tls_replicas: at least 1")


@dataclass(slots=True)
class _Signer:
    algo: str
    address: str  # ecdsa: 0x-checksummed address; ed25519: hex public key
    public_key: str
    sign: Callable[[str], str]


def _ecdsa_signer(secret: bytes) -> _Signer:
    key = EthKey(secret)  # coincurve; same bytes as eth-account's sign_message(encode_defunct(text=...))
    return _Signer("ecdsa", key.address, key.public_key.hex(), lambda text: "0x" + key.personal_sign(text).hex())


def _ed25519_signer(secret: bytes) -> _Signer:
    key = Ed25519PrivateKey.from_private_bytes(secret)
    pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    return _Signer("ed25519", pub, pub, lambda text: key.sign(text.encode()).hex())


def _report_data(signer: _Signer, nonce: bytes, tls_fingerprint: str | None = None) -> bytes:
    """docs/protocol.md §4: ecdsa = address right-padded to 32 bytes; ed25519 = the 32-byte key; TLS-bound =
    sha256(address bytes || SPKI fingerprint bytes); then the nonce."""
    address = bytes.fromhex(signer.address.removeprefix("0x"))
    if tls_fingerprint is not None:
        return hashlib.sha256(address + bytes.fromhex(tls_fingerprint)).digest() + nonce
    return address.ljust(32, b"\0") + nonce


@dataclass(slots=True)
class SimulatedGateway:
    world: SimulatorWorld
    config: SimulatorConfig = field(default_factory=SimulatorConfig)
    chats: dict[str, tuple[bytes, bytes, str]] = field(default_factory=dict)  # id -> (request, response, model)
    requests_seen: list[dict[str, str]] = field(default_factory=list)  # report query strings, for tests
    _signers: dict[str, _Signer] = field(default_factory=dict)
    _rogue: dict[str, _Signer] = field(default_factory=dict)
    _gateway_signer: _Signer | None = None
    _recorded: bytes | None = None
    tls: SimulatorTls | None = None  # the replicas' TLS identities when config.tls

    def __post_init__(self) -> None:
        if self.config.dstack_gpu_events or self.config.event_log_attacks:
            opts = self.world.identity.options
            self.world = self.world.with_cvm(
                dataclasses.replace(
                    opts,
                    gpu_devices=self.config.gpu_count if self.config.dstack_gpu_events else opts.gpu_devices,
                    attacks=opts.attacks | self.config.event_log_attacks,
                )
            )
        seed = self.world.seed

        def secret(label: str) -> bytes:
            return hashlib.sha256(seed + b"/gateway/" + label.encode()).digest()

        self._signers = {"ecdsa": _ecdsa_signer(secret("ecdsa")), "ed25519": _ed25519_signer(secret("ed25519"))}
        self._rogue = {
            "ecdsa": _ecdsa_signer(secret("rogue-ecdsa")),
            "ed25519": _ed25519_signer(secret("rogue-ed25519")),
        }
        self._gateway_signer = _ed25519_signer(secret("near-gateway-ed25519"))
        if self.config.tls:
            replicas = max(self.config.tls_replicas, 2 if self.fault("tls_other_replica") else 1)
            self.tls = SimulatorTls(seed, replicas=replicas)

    def ssl_context(self) -> ssl.SSLContext:
        """The listener's TLS context (``config.tls``): each connection is terminated by the next replica."""
        if self.tls is None:
            raise ValueError("the simulator was configured without tls")
        return self.tls.server_context()

    def signer(self, algo: str) -> _Signer:
        return self._signers[algo]

    def fault(self, name: str) -> bool:
        return name in self.config.faults

    # ------------------------------------------------------------------ app

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_get("/v1/signature/{chat_id}", self.signature)
        app.router.add_get("/v1/attestation/report", self.report)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/v1/models/phala", self.phala_models)
        app.router.add_post("/v3/attest/gpu", self.nras_attest)
        app.router.add_get("/.well-known/jwks.json", self.nras_jwks)
        add_pcs_routes(app, self._collateral, default_fmspc=lambda: self.world.platform.fmspc.hex().upper())
        return app

    def _collateral(self, fmspc: str) -> str | None:
        if fmspc != self.world.platform.fmspc.hex().upper():
            return None
        return self.world.collateral_json(int(self.config.clock()), expired=self.fault("expired_collateral"))

    # ------------------------------------------------------------------ chat

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
            model = body["model"]
            text = str(body["messages"][-1]["content"])
        except (ValueError, KeyError, IndexError, TypeError):
            return web.json_response({"error": {"message": "expected {model, messages:[...]}"}}, status=400)
        chat_id = "chatcmpl-" + secrets.token_hex(12)
        headers = {"x-model-used": model}
        if self.fault("fallback_model"):
            headers = {"x-model-used": FALLBACK_MODEL, "x-fallback-from": model, "x-fallback-depth": "1"}
            model = FALLBACK_MODEL
        created = int(self.config.clock())
        words = f"echo: {text}".split(" ")
        if body.get("stream"):
            chunks = [
                {
                    "id": chat_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "delta": {"content": (w if i == 0 else " " + w)}, "finish_reason": None}],
                }
                for i, w in enumerate(words)
            ]
            chunks.append(
                {
                    "id": chat_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                }
            )
            payload = (
                b"".join(b"data: " + json.dumps(c, separators=(",", ":")).encode() + b"\n\n" for c in chunks)
                + b"data: [DONE]\n\n"
            )
            content_type = "text/event-stream"
        else:
            doc = {
                "id": chat_id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": " ".join(words)}, "finish_reason": "stop"}
                ],
                "usage": {
                    "prompt_tokens": len(text.split()),
                    "completion_tokens": len(words),
                    "total_tokens": len(text.split()) + len(words),
                },
            }
            payload = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
            content_type = "application/json"
        self.chats[chat_id] = (raw, payload, body["model"])
        if self.fault("tls_other_replica"):
            headers["Connection"] = "close"  # the next call opens a new connection: the load balancer's next replica
        return web.Response(body=payload, content_type=content_type, headers=headers)

    async def signature(self, request: web.Request) -> web.Response:
        chat_id = request.match_info["chat_id"]
        algo = request.query.get("signing_algo", "ecdsa")
        if algo not in self._signers:
            return web.json_response({"error": {"message": f"invalid signing_algo {algo}"}}, status=400)
        if chat_id not in self.chats or self.fault("signature_expired"):
            return web.json_response({"detail": "Chat id not found or expired"}, status=404)
        raw, payload, model = self.chats[chat_id]
        resp_bytes = payload
        if self.fault("reserialized_response") and not payload.startswith(b"data:"):
            resp_bytes = json.dumps(json.loads(payload)).encode()  # Phala >= 2025-12 behaviour (§1.1)
        req_hash, resp_hash = hashlib.sha256(raw).hexdigest(), hashlib.sha256(resp_bytes).hexdigest()
        signed_model = "cheap/llama-8b" if self.fault("signed_other_model") else model
        text = f"{signed_model}:{req_hash}:{resp_hash}" if self.config.three_part_text else f"{req_hash}:{resp_hash}"
        signer = self._rogue[algo] if self.fault("wrong_signer") else self._signers[algo]
        signed_text = (
            text.replace(resp_hash, hashlib.sha256(b"something else").hexdigest())
            if self.fault("signature_other_text")
            else text
        )
        return web.json_response(
            {
                "text": text,
                "signature": signer.sign(signed_text),
                "signing_address": signer.address,
                "signing_algo": algo,
            }
        )

    # RedPill's model lists (redpill-ai/redpill-gateway:src/services/modelService.ts): a Phala model publishes its
    # dstack app id as metadata.appid — here the simulator CVM's real one, so pulled refs match its attestations.
    def _listed(self, model_id: str, providers: list[str], *, appid: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": model_id,
            "object": "model",
            "name": model_id,
            "created": 1767225600,
            "context_length": 32768,
            "providers": providers,
        }
        if appid:
            entry["metadata"] = {"appid": self.world.identity.app_id.hex()}
        return entry

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [
                    self._listed("sim/echo-1", ["phala"], appid=True),
                    self._listed("sim/plain-1", ["sim"], appid=False),  # a model without a dstack app id (not Phala)
                ],
            }
        )

    async def phala_models(self, request: web.Request) -> web.Response:
        return web.json_response({"data": [self._listed("sim/echo-1", ["phala"], appid=True)]})

    # ------------------------------------------------------------------ attestation report

    async def report(self, request: web.Request) -> web.StreamResponse:
        self.requests_seen.append(dict(request.query))
        if self.fault("report_5xx"):
            return web.json_response({"error": "upstream overloaded"}, status=503)
        if self.fault("report_429"):
            return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "30"})
        if self.fault("report_timeout"):
            await asyncio.sleep(self.config.hang_seconds)
        if self.fault("report_garbled"):
            return web.Response(text="<html><body>502 Bad Gateway</body></html>", content_type="text/html")
        try:
            nonce = bytes.fromhex(request.query["nonce"])
            if len(nonce) != 32:
                raise ValueError
        except (KeyError, ValueError):
            return web.json_response({"error": "nonce: expected 64 hex characters"}, status=400)
        algo = request.query.get("signing_algo", "ecdsa")
        if algo not in self._signers:
            return web.json_response({"error": f"invalid signing_algo {algo}"}, status=400)
        model = request.query.get("model", "sim/echo-1")
        if self.fault("replayed_report") and self._recorded is not None:
            body = self._recorded
        else:
            body = json.dumps(self._build_report(nonce, algo, model, self._tls_identity(request))).encode()
            self._recorded = self._recorded or body
        if self.fault("report_slow_body"):
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            await resp.prepare(request)
            for i in range(0, len(body), 64):
                await resp.write(body[i : i + 64])
                await asyncio.sleep(self.config.hang_seconds / 10)
            return resp
        return web.Response(body=body, content_type="application/json")

    def _tls_identity(self, request: web.Request) -> tuple[str, str] | None:
        """(SPKI sha256 to attest, the leaf PEM) when the report is asked for the TLS layout over TLS, else None:
        the key of the replica that terminated this connection (a wrong one under ``tls_wrong_fingerprint``)."""
        asked = any(request.query.get(k) == v for k, v in TLS_LAYOUT_PARAMS)
        if self.tls is None or not asked or request.transport is None:
            return None
        index = self.tls.replica_of(request.transport.get_extra_info("ssl_object"))
        if index is None:
            return None
        replica = self.tls.replicas[index]
        attested = self.tls.rogue_spki_sha256 if self.fault("tls_wrong_fingerprint") else replica.spki_sha256
        return attested, replica.cert_pem.decode()

    def _attestation(
        self, signer: _Signer, nonce: bytes, *, gpus: bool, tls_fingerprint: str | None = None
    ) -> dict[str, Any]:
        bound = secrets.token_bytes(32) if self.fault("substituted_nonce") else nonce
        world = self.world
        quote = world.tdx_quote(_report_data(signer, bound, tls_fingerprint), debug=self.fault("debug_td"))
        entry: dict[str, Any] = {
            "signing_address": signer.address,
            "signing_algo": signer.algo,
            "signing_public_key": signer.public_key,
            "request_nonce": bound.hex(),
            "intel_quote": quote.hex(),
            "event_log": json.dumps(world.event_log),
            "info": world.info(),
        }
        if tls_fingerprint is not None:
            entry["tls_cert_fingerprint"] = tls_fingerprint
        if gpus:
            entry["nvidia_payload"] = world.gpu_payload(
                bound, self.config.gpu_count, wrong_nonce=self.fault("gpu_nonce_mismatch")
            )
        return entry

    def _build_report(self, nonce: bytes, algo: str, model: str, tls: tuple[str, str] | None = None) -> dict[str, Any]:
        signer = self._signers[algo]
        fmt = self.config.report_format
        fp = tls[0] if tls else None
        if fmt == "phala_flat":
            flat = self._attestation(signer, nonce, gpus=True, tls_fingerprint=fp)
            flat["quote"] = flat["intel_quote"]
            return {**flat, "all_attestations": [dict(flat)]}
        if fmt == "near_two_layer":
            assert self._gateway_signer is not None
            # the gateway terminates our TLS; each model node attests its own node's key (the gateway's upstream hop)
            gateway = self._attestation(self._gateway_signer, nonce, gpus=False, tls_fingerprint=fp)
            attested = "cheap/llama-8b" if self.fault("attested_other_model") else model
            node_fp = self.tls.model_node_spki_sha256 if tls and self.tls else None
            model_entry = {
                "model_name": attested,
                **self._attestation(signer, nonce, gpus=True, tls_fingerprint=node_fp),
            }
            doc: dict[str, Any] = {"gateway_attestation": gateway, "model_attestations": [model_entry]}
            if tls:
                doc["tls_certificate"] = tls[1]
            return doc
        # aci_legacy: the gateway's own TDX attestation; the GPU evidence is the upstream model node's (§3.3)
        legacy = self._attestation(signer, nonce, gpus=True, tls_fingerprint=fp)
        keyset = {"keys": [{"alg": algo, "public_key": signer.public_key}]}
        return {
            "api_version": "aci/1",
            "workload_keyset_digest": "sha256:"
            + hashlib.sha256(json.dumps(keyset, sort_keys=True).encode()).hexdigest(),
            "attestation": {"tee_type": "tdx", "workload_keyset": keyset, "evidence": {"quote": legacy["intel_quote"]}},
            **legacy,
            "all_attestations": [dict(legacy)],
        }

    # ------------------------------------------------------------------ NRAS

    async def nras_attest(self, request: web.Request) -> web.Response:
        try:
            payload = json.loads(await request.read())
        except ValueError:
            return web.json_response({"error": "bad json"}, status=400)
        answer = self.world.nras_response(payload, now=int(self.config.clock()), fail=self.fault("nras_failure"))
        return web.json_response(answer)

    async def nras_jwks(self, request: web.Request) -> web.Response:
        return web.json_response(self.world.jwks())
