"""Verification CPU off the event loop: the engine runs on a worker thread's own event loop.

The pipeline and the evaluation (signature recovery, certificate chains, SPDM and NRAS signatures, JSON
parsing of multi-MiB reports) are CPU work on Python objects; on the service's loop they would delay every
other request. ``Offloader.run`` runs such a coroutine on one long-lived worker thread with its own loop, so
the service loop keeps the GIL's regular switch interval to answer others. The engine's I/O ports (gateway
client, dcap pool, collateral cache, NRAS client, prior attestations) belong to the service loop (their
sessions, pipes and locks live there): ``bridge`` wraps each so that its coroutine methods run there and the
engine merely awaits the result from its own loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _Bridge:
    """``target`` seen from another loop: coroutine methods run on ``home``; everything else is passed through."""

    def __init__(self, target: Any, home: asyncio.AbstractEventLoop) -> None:
        self._target, self._home = target, home

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        home = self._home

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(attr(*args, **kwargs), home))

        return call


def _has_coroutine_methods(value: object) -> bool:
    return any(
        inspect.iscoroutinefunction(getattr(type(value), n, None)) for n in dir(type(value)) if not n.startswith("__")
    )


def bridge(value: T, home: asyncio.AbstractEventLoop) -> T:
    """``value`` made usable from the worker loop: an I/O port (an object with coroutine methods) is bridged; a
    dataclass gets each of its port fields bridged (a ``Context``); anything else (data) is returned as it is."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        ports = {
            f.name: _Bridge(v, home)
            for f in dataclasses.fields(value)
            if (v := getattr(value, f.name)) is not None and _has_coroutine_methods(v)
        }
        return dataclasses.replace(value, **ports) if ports else value
    if _has_coroutine_methods(value):
        return _Bridge(value, home)  # type: ignore[return-value]
    return value


class Offloader:
    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="verifier-engine", daemon=True)
        self._thread.start()

    async def run(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any, **kwargs: Any) -> T:
        """``await fn(*args, **kwargs)`` on the worker loop; cancelling the caller cancels it there too."""
        future = asyncio.run_coroutine_threadsafe(fn(*args, **kwargs), self._loop)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
