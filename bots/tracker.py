"""The requests an adapter is running, and the one way they end when it stops.

Both adapters run every request through a :class:`RequestTracker`, so both
behave the same at shutdown:

* a request that arrives while the adapter is stopping is refused with the
  adapter's ``stopping`` notice (send it again in a minute), never dropped silently;
* on stop, running requests get ``grace`` seconds to finish; the rest are
  cancelled and their users hear the same notice instead of a stuck placeholder;
* a request that fails anyway (the core promises it never raises) is logged,
  redacted, and its user hears the adapter's ``error`` notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from core import inbox
from core.draining import drain

__all__ = ["Notice", "RequestTracker"]

#: Sends the adapter's notice ``key`` ("stopping" or "error") to the request's user.
Notice = Callable[[str], Awaitable[None]]

#: How long a notice may take while stopping (the platform may be slow or gone).
_NOTICE_TIMEOUT = 5.0


class RequestTracker:
    """Runs requests, remembers them, and drains them on stop.

    ``name`` starts the adapter's log lines, ``log`` is its logger (its secret
    filter applies) and ``redact`` cleans an exception's text before it is logged.
    """

    def __init__(
        self, name: str, log: logging.Logger, *, redact: Callable[[str], str] = str
    ) -> None:
        self._name = name
        self._log = log
        self._redact = redact
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refusals: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def closing(self) -> bool:
        """Whether :meth:`drain` has begun (new requests are refused)."""
        return self._closing

    @property
    def running(self) -> int:
        """How many requests are running."""
        return len(self._tasks)

    def spawn(self, work: Coroutine[Any, Any, None], notice: Notice) -> None:
        """Run ``work`` in a task of its own, tracked from this moment on."""
        if self._closing:
            self._keep(asyncio.create_task(self._refuse(work, notice)))
            return
        task = asyncio.create_task(self._watched(work, notice, "background task"))
        inbox.track(task)  # a stored update counts as handled once its request ends
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self, work: Coroutine[Any, Any, None], notice: Notice) -> None:
        """Run ``work`` in this task, tracked so that :meth:`drain` can wait for or cancel it."""
        if self._closing:
            await self._refuse(work, notice)
            return
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._watched(work, notice, "request")
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def drain(self, grace: float) -> None:
        """Refuse new requests, give the running ones ``grace`` s, then cancel the rest."""
        self._closing = True
        await drain(self._tasks - {asyncio.current_task()}, grace)

    async def _watched(self, work: Coroutine[Any, Any, None], notice: Notice, what: str) -> None:
        try:
            await work
        except asyncio.CancelledError:
            # Stopped mid-request: say so instead of leaving the user waiting.
            await self._tell(notice, "stopping")
            raise
        except Exception as exc:
            reason = self._redact(f"{type(exc).__name__}: {exc}")
            self._log.error("%s: %s failed: %s", self._name, what, reason, exc_info=exc)
            await self._tell(notice, "error")

    async def _refuse(self, work: Coroutine[Any, Any, None], notice: Notice) -> None:
        work.close()
        self._log.info("%s: a request arrived while stopping; its user is told", self._name)
        await self._tell(notice, "stopping")

    def _keep(self, task: asyncio.Task[None]) -> None:
        self._refusals.add(task)  # a reference, so the task is not collected mid-run
        task.add_done_callback(self._refusals.discard)

    async def _tell(self, notice: Notice, key: str) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_NOTICE_TIMEOUT):
                await notice(key)
