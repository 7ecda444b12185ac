"""Delivering a finished render: exactly once, trying until something gets through.

The tracker (:mod:`core.renders`) follows a render until the backend is done, then
hands it here. Delivery is claimed atomically in the store first (the claim names
this process and is renewed during long uploads), so no render is ever posted twice.
The file is tried ``delivery_attempts`` times, with backoff; then the user gets the
link in a plain message saying the file itself could not be sent, tried with growing
pauses (up to ``max_backoff``) until it gets through. A render is marked delivered
only once something reached the chat, so the next start finishes whatever a stop
interrupted, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from core.client import NemoClient
from core.i18n import t
from core.polling import PollPolicy
from core.renewal import kept_alive
from core.replies import plain_reason, quietly
from core.types import DEFAULT_ACTIONS, Replier, Video
from core.wire import RenderState
from storage.base import RenderRecord, Store

__all__ = ["NEVER_STARTED", "NO_ANSWER", "NO_FILE", "TOO_LONG", "Delivery"]

#: Why a render that was recorded but never reached the backend failed.
NEVER_STARTED = "the export never reached the video service"
NO_ANSWER = "the video service stopped answering"
TOO_LONG = "it took too long"
NO_FILE = "the video service returned no file"
# The reasons the tracker gives itself are stored in English (for operators) and
# told to the user in their language.
_REASONS = {
    NEVER_STARTED: "reason_never_started",
    NO_ANSWER: "reason_no_answer",
    TOO_LONG: "reason_too_long",
    NO_FILE: "reason_no_file",
}

log = logging.getLogger("nemo.renders")


class Delivery:
    """Records a render's outcome and delivers it to its chat, once."""

    def __init__(
        self,
        *,
        store: Store,
        client: NemoClient,
        policy: PollPolicy,
        clock: Callable[[], float] = time.monotonic,
        on_delivered: Callable[[RenderRecord, float], None] | None = None,
    ) -> None:
        self._store = store
        self._client = client
        self.policy = policy
        self._clock = clock
        self._on_delivered = on_delivered
        # Names this process's delivery claims (several processes may share a database).
        self.owner = uuid.uuid4().hex

    async def finish(
        self,
        render: RenderRecord,
        replier: Replier,
        lang: str | None,
        status: RenderState,
        url: str | None,
        error: str | None,
        done_at: float,
    ) -> None:
        """Record the outcome and deliver it once, trying until something gets through."""
        if status == RenderState.COMPLETED and not url:
            status, error = RenderState.FAILED, NO_FILE
        await self._store.update_render(
            render.render_id,
            status=status,
            progress=100 if status == RenderState.COMPLETED else None,
            output_url=url,
            error=error,
        )
        render.status = status
        failures = 0
        while True:
            if not await self.claim(render.render_id):
                current = await self._store.get_render(render.render_id)
                if current is None or current.delivered_at is not None:
                    return  # delivered already (by us before a restart, or by another process)
                # Claimed by someone else — maybe a process that died mid-send: look again
                # in a while; the claim expires after its lease.
                await asyncio.sleep(self.policy.max_interval)
                continue
            # The file did not get through a few times: give the link in a plain message.
            link_only = (
                status == RenderState.COMPLETED and failures >= self.policy.delivery_attempts
            )
            try:
                async with self.holding_claim(render.render_id):
                    if link_only and url:
                        await replier.send_text(
                            t("export_link_only", lang, url=url), actions=DEFAULT_ACTIONS
                        )
                    else:
                        await self._deliver(render, replier, lang, status, url, error)
            except asyncio.CancelledError:
                # Stopping mid-send: give the claim back so the next start delivers it.
                await _even_if_cancelled(self.release, render.render_id)
                raise
            except Exception as exc:
                await self.release(render.render_id)
                failures += 1
                log.warning(
                    "render %s: delivery attempt %d failed (%s%s); trying again",
                    render.render_id,
                    failures,
                    type(exc).__name__,
                    ", the link alone" if link_only else "",
                )
                # Never set aside: a stop leaves it undelivered and the next start goes on.
                await asyncio.sleep(self.policy.delivery_pause(failures))
                continue
            # It is in the chat: record it even if we are being stopped right now.
            await _even_if_cancelled(self._mark_delivered, render.render_id)
            if self._on_delivered is not None:
                self._on_delivered(render, max(0.0, self._clock() - done_at))
            return

    async def claim(self, render_id: str) -> bool:
        return await self._store.claim_delivery(
            render_id, owner=self.owner, lease=self.policy.delivery_lease
        )

    async def release(self, render_id: str) -> None:
        await self._store.release_delivery(render_id, owner=self.owner)

    async def _mark_delivered(self, render_id: str) -> None:
        await self._store.mark_delivered(render_id, owner=self.owner)

    @contextlib.asynccontextmanager
    async def holding_claim(self, render_id: str) -> AsyncIterator[None]:
        """Renew our claim while a (possibly long) upload runs, so nobody else delivers."""

        async def beat() -> bool:
            with contextlib.suppress(Exception):  # a blip: the next beat renews it
                await self.claim(render_id)
            return True

        async with kept_alive(beat, self.policy.delivery_lease / 3):
            yield

    async def _deliver(
        self,
        render: RenderRecord,
        replier: Replier,
        lang: str | None,
        status: RenderState,
        url: str | None,
        error: str | None,
    ) -> None:
        if status == RenderState.COMPLETED and url:
            await quietly(replier.progress(t("export_started", lang, percent=100), 100))
            client = self._client
            await replier.send_video(
                Video(
                    url=url,
                    caption=t("export_done", lang, url=url),
                    summary=render.summary,
                    fetch=lambda limit: client.download(url, limit=limit),
                )
            )
        else:
            own = _REASONS.get(error or "")
            reason = t(own, lang) if own else plain_reason(error, t("reason_unknown", lang))
            await replier.send_text(
                t("export_failed", lang, reason=reason), actions=DEFAULT_ACTIONS
            )


async def _even_if_cancelled(write: Callable[[str], Awaitable[None]], render_id: str) -> None:
    """Finish an idempotent store write although the task is being cancelled, then re-raise."""
    try:
        await write(render_id)
    except asyncio.CancelledError:
        await write(render_id)
        raise
