"""The channel between the proxy's process and a verifier worker it spawned (``verify_pool``, ``verify_worker``):
the worker's configuration, and length-prefixed pickle frames over a socketpair. Frames are only ever exchanged
between this process and the workers it spawned (never a network peer)."""

from __future__ import annotations

import asyncio
import pickle
import struct
from dataclasses import dataclass
from typing import Any

from verifier.app.settings import Settings
from verifier.appraise.policy import Policy
from verifier.appraise.refs import Refs

MAX_FRAME = 1 << 30  # a job carries at most 8 MiB of request and 64 MiB of response; a result its bundle
HEADER = struct.Struct("!Q")
JOB_ID = struct.Struct("!Q")  # the budget channel: one job id in, one byte out


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    settings: Settings
    policy: Policy
    refs: Refs | None
    dcap_workers: int
    nice: int


def frame(message: tuple[Any, ...]) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


async def read_frame(reader: asyncio.StreamReader) -> tuple[Any, ...]:
    (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    if size > MAX_FRAME:
        raise ConnectionError(f"frame of {size} bytes")
    message = pickle.loads(await reader.readexactly(size))  # noqa: S301 - only ever from our own spawned process
    if not isinstance(message, tuple) or not message:
        raise ConnectionError("malformed frame")
    return message
