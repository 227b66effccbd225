"""A gateway's model list (aiohttp adapter): ``GET /v1/models`` and ``GET /v1/models/phala``.

The RedPill gateway answers both with ``{"data": [model, ...]}``; a model is an object with an ``id``,
``providers`` (names) and, for a model served by a Phala dstack CVM, ``metadata.appid``: the dstack app
id (20 bytes, hex) of its deployment (``redpill-ai/redpill-gateway:src/services/modelService.ts``).
``/v1/models`` also lists ``phala/``-prefixed aliases as entries of their own; ``/v1/models/phala``
lists the Phala-native models without them. What a gateway says it runs is a claim, not evidence:
``verifier refs pull`` records it as trust on first use.

Redirects are never followed, bodies are capped, and anything but a 2xx JSON object of that shape is
an ``UpstreamError`` (reasons as in ``verifier.adapters.gateway``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import aiohttp

from verifier.adapters.gateway import classify
from verifier.adapters.transport import BodyTooLarge, read_capped
from verifier.core.errors import UpstreamError

MODELS_PATH = "/v1/models"
PHALA_MODELS_PATH = "/v1/models/phala"
MAX_MODEL_LIST_BYTES = 8 * 1024 * 1024
_HEX40 = re.compile(r"(?:0x)?[0-9a-fA-F]{40}")


@dataclass(frozen=True, slots=True)
class ListedModel:
    id: str
    app_id: bytes | None  # metadata.appid, when the gateway publishes one
    providers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelList:
    url: str
    models: tuple[ListedModel, ...]


def _garbled(url: str, message: str) -> UpstreamError:
    return UpstreamError(f"model list: {url}: {message}", reason="upstream_garbled")


def parse_model_list(body: bytes, *, url: str) -> ModelList:
    """``{"data": [{"id": ..., "providers": [...], "metadata": {"appid": ...}}, ...]}``; other keys are ignored."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise _garbled(url, f"the body is not JSON ({len(body)} bytes)") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise _garbled(url, 'expected a JSON object {"data": [model, ...]}')
    models = []
    for i, item in enumerate(doc["data"]):
        where = f"data[{i}]"
        if not isinstance(item, dict):
            raise _garbled(url, f"{where} is not an object")
        model_id = item.get("id")
        if not isinstance(model_id, str) or not model_id.strip():
            raise _garbled(url, f"{where}.id is not a non-empty string")
        providers = [] if item.get("providers") is None else item["providers"]
        if not isinstance(providers, list) or not all(isinstance(p, str) for p in providers):
            raise _garbled(url, f"{where}.providers ({model_id!r}) is not a list of strings")
        metadata = {} if item.get("metadata") is None else item["metadata"]
        if not isinstance(metadata, dict):
            raise _garbled(url, f"{where}.metadata ({model_id!r}) is not an object")
        appid = metadata.get("appid")
        if appid is not None and (not isinstance(appid, str) or not _HEX40.fullmatch(appid)):
            raise _garbled(url, f"{where}.metadata.appid ({model_id!r}) is {_show(appid)}, not a 20-byte hex app id")
        models.append(
            ListedModel(
                id=model_id,
                app_id=bytes.fromhex(appid.removeprefix("0x")) if appid else None,
                providers=tuple(providers),
            )
        )
    return ModelList(url=url, models=tuple(models))


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _headers(api_key: str | None) -> dict[str, str]:
    if not api_key:
        return {}
    if api_key.lower().startswith(("bearer ", "basic ")):
        return {"Authorization": api_key}
    return {"Authorization": f"Bearer {api_key}"}


async def fetch_model_list(
    session: aiohttp.ClientSession,
    url: str,
    *,
    api_key: str | None = None,
    timeout: float = 15.0,
    optional: bool = False,
) -> ModelList | None:
    """GET one model list; None when ``optional`` and the gateway answers 404 (it does not publish that list)."""
    try:
        async with session.get(
            url, headers=_headers(api_key), timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False
        ) as resp:
            if 300 <= resp.status < 400:
                raise UpstreamError(
                    f"model list: {url} answered {resp.status} (redirect to {resp.headers.get('Location')!r}); "
                    "redirects are not followed",
                    reason="upstream_rejected",
                    details={"status": resp.status},
                )
            if optional and resp.status == 404:
                return None
            try:
                body = await read_capped(resp, MAX_MODEL_LIST_BYTES)
            except BodyTooLarge:
                raise _garbled(url, f"body larger than {MAX_MODEL_LIST_BYTES} bytes") from None
            if not 200 <= resp.status < 300:
                classify(resp.status, body, what="model list", url=url)  # raises for every non-2xx answer
            return parse_model_list(body, url=url)
    except TimeoutError:
        raise UpstreamError(f"model list: {url} did not answer within {timeout} s", reason="upstream_timeout") from None
    except aiohttp.ClientError as exc:
        raise UpstreamError(f"model list: {url}: {type(exc).__name__}: {exc}", reason="upstream_unavailable") from None


async def fetch_model_lists(
    base_url: str, *, api_key: str | None = None, timeout: float = 15.0
) -> tuple[ModelList, ...]:
    """``/v1/models`` (required) and ``/v1/models/phala`` (when the gateway publishes it), in that order."""
    base = base_url.rstrip("/")
    async with aiohttp.ClientSession() as session:
        main = await fetch_model_list(session, base + MODELS_PATH, api_key=api_key, timeout=timeout)
        phala = await fetch_model_list(
            session, base + PHALA_MODELS_PATH, api_key=api_key, timeout=timeout, optional=True
        )
    assert main is not None
    return (main,) if phala is None else (main, phala)
