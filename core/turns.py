"""Who is running or waiting in each session, so a cancel can find it and a queue can count.

The session gate (:mod:`core.gate`) decides *when* a request runs; this module
keeps the requests of this process that hold or await a turn, in arrival order,
each as a :class:`Ticket` with the task that runs it. Two things read it:

* a cancel (:mod:`core.cancel`) finds the session's running chat request and its
  waiting ones, and stops their tasks;
* a waiting request shows its place ("2 requests ahead of you") in its own notice
  message, edited in place as the requests ahead of it finish. One updater task
  per waiting request edits the notice, so the edits never overtake each other,
  and the adapter throttles them to the platform's limits.

With a gate shared by several replicas (``exact=False``), requests of one session
held by another replica are not visible here: the gate counts the place in the
store and reports it (:meth:`Turns.placed`); a gate that reports nothing gets the
plain "still working on your last request" notice instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from core.gate import SessionKey
from core.replies import quietly
from core.request import Request
from core.types import Action, Intent

__all__ = ["Ticket", "TicketState", "Turns"]


class TicketState(enum.Enum):
    """Where a request stands in its session's line."""

    WAITING = "waiting"
    RUNNING = "running"


@dataclass(eq=False, slots=True)
class Ticket:
    """One session-changing request of this process that holds or awaits its turn."""

    key: SessionKey
    req: Request
    intent: Intent
    state: TicketState = TicketState.WAITING
    task: asyncio.Task[None] | None = None
    cancelled: bool = False
    """Set by a cancel before it stops the task (so the stop is not taken for a shutdown)."""
    moved: asyncio.Event = field(default_factory=asyncio.Event)
    notifier: asyncio.Task[None] | None = None
    place: int | None = None
    """Requests ahead as the gate counted them (a gate shared by replicas), if it did."""


class Turns:
    """This process's requests in line, per session, in arrival order."""

    def __init__(self, *, exact: bool = True) -> None:
        self._exact = exact
        self._lines: dict[SessionKey, list[Ticket]] = {}

    @property
    def exact(self) -> bool:
        """Whether this process sees whole lines (False: the gate counts places)."""
        return self._exact

    def enter(self, key: SessionKey, req: Request, intent: Intent) -> Ticket:
        """Put a request in its session's line (it runs or waits as the gate decides)."""
        ticket = Ticket(key, req, intent)
        self._lines.setdefault(key, []).append(ticket)
        return ticket

    def line(self, key: SessionKey) -> list[Ticket]:
        """The session's tickets, oldest first."""
        return list(self._lines.get(key, ()))

    def busy(self, key: SessionKey) -> bool:
        """Whether a request of this session runs or waits here."""
        return bool(self._lines.get(key))

    def waiting_of(self, platform: str, user_id: str) -> int:
        """How many requests of this user wait here, in any of their chats."""
        return sum(
            1
            for key, line in self._lines.items()
            if key.platform == platform and key.user_id == user_id
            for ticket in line
            if ticket.state is TicketState.WAITING
        )

    async def waits(self, ticket: Ticket) -> None:
        """The gate made ``ticket`` wait: show its place, and keep it up to date."""
        if not self._exact and ticket.place is None:
            await quietly(ticket.req.say("queued"))
            return
        await self._show_place(ticket)
        ticket.notifier = asyncio.create_task(self._follow_place(ticket))

    async def placed(self, ticket: Ticket, ahead: int) -> None:
        """The gate counted ``ahead`` requests before ``ticket`` (across replicas)."""
        if not self._exact:
            ticket.place = ahead
            ticket.moved.set()

    def starts(self, ticket: Ticket) -> None:
        """``ticket``'s turn came."""
        ticket.state = TicketState.RUNNING
        self._moved(ticket.key)

    def leave(self, ticket: Ticket) -> None:
        """``ticket`` is done (finished, refused or cancelled): the others move up."""
        line = self._lines.get(ticket.key)
        if line is not None:
            with contextlib.suppress(ValueError):
                line.remove(ticket)
            if not line:
                del self._lines[ticket.key]
        self._moved(ticket.key)
        ticket.moved.set()

    def _moved(self, key: SessionKey) -> None:
        for other in self._lines.get(key, ()):
            other.moved.set()

    def _ahead(self, ticket: Ticket) -> int:
        if not self._exact:
            return ticket.place or 0
        line = self._lines.get(ticket.key, [])
        return line.index(ticket) if ticket in line else 0

    async def _show_place(self, ticket: Ticket) -> None:
        ahead = max(1, self._ahead(ticket))
        words = ticket.req.words
        text = words("queue_one") if ahead == 1 else words("queue_many", ahead=ahead)
        await quietly(ticket.req.replier.notice(text, actions=(Action.CANCEL,)))

    async def _follow_place(self, ticket: Ticket) -> None:
        """Edit the notice each time the line moves, until the ticket runs or leaves."""
        shown = self._ahead(ticket)
        while True:
            await ticket.moved.wait()
            ticket.moved.clear()
            if ticket.cancelled:
                await quietly(ticket.req.replier.notice(ticket.req.words("cancelled")))
                return
            if ticket.state is TicketState.RUNNING:
                await quietly(ticket.req.replier.notice(ticket.req.words("queue_turn")))
                return
            if ticket not in self._lines.get(ticket.key, ()):
                return  # refused or stopped: whoever ended it said so
            ahead = self._ahead(ticket)
            if ahead != shown:
                shown = ahead
                await self._show_place(ticket)


def stop_all(tickets: list[Ticket], *, when: Callable[[Ticket], bool]) -> list[Ticket]:
    """Mark and stop the tasks of the ``tickets`` that ``when`` picks; returns them."""
    stopped = []
    for ticket in tickets:
        if ticket.task is not None and not ticket.task.done() and when(ticket):
            ticket.cancelled = True
            ticket.moved.set()
            ticket.task.cancel()
            stopped.append(ticket)
    return stopped
