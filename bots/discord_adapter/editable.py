"""One posted Discord message that is edited in place: throttled, never with the same text."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import discord

from .texts import MESSAGE_LIMIT

__all__ = ["EditFn", "EditableMessage"]

log = logging.getLogger(__name__)

EditFn = Callable[..., Awaitable[Any]]
"""A bound ``edit(content=..., **fields)`` of some discord.py message object."""


class EditableMessage:
    """A posted message that can be edited, with throttling and de-duplication.

    ``edit`` is the bound edit call (an interaction's original response, a
    followup, or a channel message); ``expires_at`` (monotonic seconds) is when
    the adapter stops relying on an interaction-token edit, ``None`` for channel
    messages; ``closes_at`` is when Discord refuses it for sure (its 15 minutes).
    """

    def __init__(
        self,
        edit: EditFn,
        *,
        shown: str,
        interval: float,
        expires_at: float | None = None,
        closes_at: float | None = None,
    ) -> None:
        self._edit = edit
        self.shown = shown
        self.wanted = shown
        self.interval = interval
        self.expires_at = expires_at
        self.closes_at = closes_at if closes_at is not None else expires_at
        self._last_edit = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._fields: dict[str, Any] = {}  # other fields (a view) waiting for the next edit

    def alive(self) -> bool:
        """Whether edits can still reach this message."""
        return self.expires_at is None or time.monotonic() < self.expires_at

    def reachable(self) -> bool:
        """Whether a last edit may still reach it (past :meth:`alive`, before Discord's limit)."""
        return self.closes_at is None or time.monotonic() < self.closes_at

    async def update(self, content: str, **fields: Any) -> None:
        """Show ``content`` (and ``fields``, e.g. ``view=None``) soon, in one background
        edit once the last one is old enough."""
        self.wanted = content[:MESSAGE_LIMIT]
        self._fields.update(fields)
        unchanged = self.wanted == self.shown and not self._fields
        if unchanged or (self._task is not None and not self._task.done()):
            return
        # Always in the background: the caller (a backend stream, a render poll) never
        # waits for Discord; text arriving meanwhile joins this same edit.
        delay = max(0.0, self._last_edit + self.interval - time.monotonic())
        self._task = asyncio.create_task(self._flush_later(delay))

    async def final(self, content: str | None = None, **extra: Any) -> bool:
        """The last edit: waits out the throttle, then shows ``content`` and ``extra`` fields.

        Returns whether the message now shows it.
        """
        if content is not None:
            self.wanted = content[:MESSAGE_LIMIT]
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.wanted == self.shown and not extra and not self._fields:
            return True
        delay = self._last_edit + self.interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        return await self._flush(**extra)

    async def _flush_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            flushed = await self._flush()
        except Exception:  # a background edit must never die silently
            log.exception("discord: delayed edit failed")
            return
        if flushed and (self.wanted != self.shown or self._fields):
            # Asked for while that edit was on its way: one more follows, throttled.
            delay = max(0.0, self._last_edit + self.interval - time.monotonic())
            self._task = asyncio.create_task(self._flush_later(delay))

    async def _flush(self, **extra: Any) -> bool:
        async with self._lock:
            content = self.wanted
            # Taken now: fields asked for while this edit is on its way wait for the next.
            pending, self._fields = self._fields, {}
            fields = {**pending, **extra}
            if content == self.shown and not fields:
                return True
            try:
                await self._edit(content=content, **fields)
            except BaseException as exc:  # failed or cancelled: its fields go with the next
                self._fields = {**pending, **self._fields}
                if not isinstance(exc, discord.HTTPException):
                    raise
                log.warning("discord: edit failed (%s %s)", exc.status, exc.code)
                return False
            finally:
                self._last_edit = time.monotonic()
            self.shown = content
            return True
