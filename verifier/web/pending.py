"""Verifications the proxy runs after the response has gone out, addressable by a ticket id at once.

A streamed completion (or any completion in ``async`` mode) leaves before its verdict exists, so its
``X-Verification-Id`` is a ticket (``vt_`` + 24 hex digits) minted before the first byte. ``GET
/v1/verifications/{ticket}`` on the proxy waits (bounded) for the verification and answers its verdict, whose
``id`` is the ledger id (for ``verifier show``). Tickets live in memory only, scoped to the key that caused them;
at most ``MAX_TICKETS`` are kept (the oldest finished ones are forgotten first).

``Backlog`` bounds the completions the proxy has accepted and not yet verified (relaying, queued, verifying):
a slot is taken when a completion request arrives, before the gateway is contacted, and given back when its
verification has ended (or when nothing is to be verified). When every slot is taken the request is refused
with 503 ``verification_backlog_full``: a completion that could not be verified is never produced.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

MAX_TICKETS = 10_000
BACKLOG = 1000  # default: completions accepted and not yet verified
TICKET_PREFIX = "vt_"


@dataclass(slots=True)
class Ticket:
    owner: str  # the verifier key id the ticket belongs to
    task: asyncio.Task[dict[str, Any]]


class Pending:
    def __init__(self, *, max_tickets: int = MAX_TICKETS) -> None:
        self._tickets: OrderedDict[str, Ticket] = OrderedDict()
        self._max = max_tickets

    @staticmethod
    def mint() -> str:
        return TICKET_PREFIX + secrets.token_hex(12)

    @staticmethod
    def is_ticket(text: str) -> bool:
        body = text.removeprefix(TICKET_PREFIX)
        return text.startswith(TICKET_PREFIX) and len(body) == 24 and all(c in "0123456789abcdef" for c in body)

    def start(self, ticket: str, owner: str, work: Coroutine[Any, Any, dict[str, Any]]) -> asyncio.Task[dict[str, Any]]:
        task = asyncio.get_running_loop().create_task(work, name=f"verify {ticket}")
        self._tickets[ticket] = Ticket(owner, task)
        while len(self._tickets) > self._max:
            oldest = next((t for t, v in self._tickets.items() if v.task.done()), None)
            if oldest is None:
                break  # every ticket is still running: keep them (the admission limits bound how many)
            del self._tickets[oldest]
        return task

    def get(self, ticket: str, *, owner: str | None) -> Ticket | None:
        """The ticket if it exists and ``owner`` (None: any reader) may see it."""
        found = self._tickets.get(ticket)
        if found is None or (owner is not None and found.owner != owner):
            return None
        return found

    def running(self) -> list[asyncio.Task[dict[str, Any]]]:
        return [t.task for t in self._tickets.values() if not t.task.done()]

    async def drain(self, timeout: float) -> None:
        """Let running verifications finish (shutdown); cancel what is still running after ``timeout``."""
        tasks = self.running()
        if not tasks:
            return
        _done, late = await asyncio.wait(tasks, timeout=timeout)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)


class Backlog:
    """At most ``limit`` completions accepted and not yet verified."""

    def __init__(self, limit: int = BACKLOG) -> None:
        if limit < 1:
            raise ValueError("the verification backlog needs at least one slot")
        self.limit = limit
        self.in_use = 0

    def slot(self) -> Slot | None:
        """A slot, or None when the backlog is full."""
        if self.in_use >= self.limit:
            return None
        self.in_use += 1
        return Slot(self)


class Slot:
    """One completion's place in the backlog; ``release`` is idempotent, ``hand_to`` makes a task release it."""

    def __init__(self, backlog: Backlog) -> None:
        self._backlog: Backlog | None = backlog
        self.handed = False

    def release(self, *_: object) -> None:
        if self._backlog is not None:
            self._backlog.in_use -= 1
            self._backlog = None

    def hand_to(self, task: asyncio.Task[Any]) -> None:
        """The slot is released when ``task`` ends (however it ends), not by its first holder."""
        self.handed = True
        task.add_done_callback(self.release)
