"""Render jobs: follow an export until its MP4 is delivered, exactly once.

Every export is persisted before the user is told it started, with the
conversation reference to deliver to, so a restart resumes it
(:meth:`RenderTracker.resume`). Delivery is claimed atomically in the store
first, so no render is ever posted twice.

Polling is adaptive and the progress bar moves between polls
(:mod:`core.polling`: :class:`PollPolicy`, :class:`ProgressEstimate`).

Delivery, once the backend is done, is :mod:`core.delivery`'s: claimed, retried until
something gets through (the file, else its link), marked delivered once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping

from core.accounts import RenderOwners, renewing
from core.client import NemoClient
from core.delivery import NEVER_STARTED, NO_ANSWER, TOO_LONG, Delivery
from core.i18n import t
from core.polling import PollPolicy, ProgressEstimate
from core.replies import quietly
from core.types import ChatAdapter, ConversationRef, Replier
from core.wire import RenderState, RenderStatus
from storage.base import RenderRecord, Store

__all__ = ["RenderTracker", "ref_of"]

log = logging.getLogger("nemo.renders")

#: What a stored render's status is once the backend has finished with it.
_DONE = frozenset({RenderState.COMPLETED, RenderState.FAILED})


def ref_of(render: RenderRecord, language: str | None = None) -> ConversationRef:
    """The conversation a render is delivered to (in the user's ``language``)."""
    return ConversationRef(
        platform=render.platform,
        chat_id=render.chat_id,
        user_id=render.user_id,
        thread_id=render.thread_id,
        reply_to=render.reply_to,
        language=language,
    )


class RenderTracker:
    """Runs one background task per render in flight; no global queue."""

    def __init__(
        self,
        *,
        store: Store,
        client: NemoClient,
        owners: RenderOwners,
        policy: PollPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_delivered: Callable[[RenderRecord, float], None] | None = None,
        shared: bool = False,
    ) -> None:
        """``shared``: several replicas use this database, so a render is followed by the
        replica holding its claim (renewed every third of ``policy.delivery_lease``) and
        :meth:`adopt` takes over the renders of replicas that stopped renewing."""
        self._store = store
        self.shared = shared
        self._client = client
        self._owners = owners
        self._policy = policy or PollPolicy()
        self._clock = clock
        self._delivery = Delivery(
            store=store, client=client, policy=self._policy, clock=clock, on_delivered=on_delivered
        )
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._adopter: asyncio.Task[None] | None = None
        # Renders recorded from now on are followed live by this process, not resumed.
        self._started_at = time.time()
        self._by_session: dict[str, str] = {}

    def active_for(self, session_id: str) -> bool:
        """Whether a render of this session is being followed right now."""
        render_id = self._by_session.get(session_id)
        return render_id is not None and render_id in self._tasks

    def stop(self, render_id: str) -> None:
        """Stop following ``render_id`` here (a cancel; the store already says it is done)."""
        task = self._tasks.get(render_id)
        if task is not None:
            task.cancel()

    @property
    def in_flight(self) -> int:
        """How many renders are being followed."""
        return len(self._tasks)

    def follow(self, render: RenderRecord, replier: Replier, lang: str | None) -> None:
        """Follow ``render`` in the background and deliver it through ``replier``."""
        if render.render_id in self._tasks:
            return
        task = asyncio.create_task(
            self._follow(render, replier, lang), name=f"render-{render.render_id}"
        )
        self._tasks[render.render_id] = task
        self._by_session[render.session_id] = render.render_id
        task.add_done_callback(functools.partial(self._forget, render))

    @contextlib.asynccontextmanager
    async def submitting(self, render: RenderRecord) -> AsyncIterator[None]:
        """Record ``render`` before it is submitted (the body submits it).

        With ``shared`` replicas the record is created claimed by this replica and the
        claim is renewed while the submit runs, so no other replica adopts a render
        that is still on its way (it would poll too early, get "not found" and tell
        the user it never started). If this replica dies mid-submit the claim expires
        and another adopts and follows it.
        """
        if not self.shared:
            await self._store.add_render(render)
            yield
            return
        # The store's clock is Unix time (claims expire by it).
        render.claimed_by, render.claimed_at = self._delivery.owner, time.time()
        await self._store.add_render(render)
        async with self._delivery.holding_claim(render.render_id):
            yield

    def _forget(self, render: RenderRecord, _task: object = None) -> None:
        self._tasks.pop(render.render_id, None)
        if self._by_session.get(render.session_id) == render.render_id:
            del self._by_session[render.session_id]

    async def start(self, adapters: Mapping[str, ChatAdapter], *, adopt_every: float) -> int:
        """:meth:`resume`; when replicas share the store, also :meth:`keep_adopting`
        every ``adopt_every`` s until :meth:`aclose`. Returns how many were resumed."""
        resumed = await self.resume(adapters)
        if self.shared and self._adopter is None:
            self._adopter = asyncio.create_task(self.keep_adopting(adapters, adopt_every))
        return resumed

    async def resume(self, adapters: Mapping[str, ChatAdapter]) -> int:
        """Follow every undelivered render whose platform runs in this process.

        With ``shared`` only the renders nobody follows (:meth:`adopt`).
        """
        if self.shared:
            return await self.adopt(adapters)
        resumed = 0
        for render in await self._store.undelivered_renders():
            adapter = adapters.get(render.platform)
            if adapter is None or render.created_at >= self._started_at:
                continue
            lang = await self._owners.language(render)
            self.follow(render, adapter.replier_for(ref_of(render, lang)), lang)
            resumed += 1
        if resumed:
            log.info("resumed %d undelivered render(s)", resumed)
        return resumed

    async def adopt(self, adapters: Mapping[str, ChatAdapter]) -> int:
        """Claim and follow the undelivered renders no live replica holds; how many.

        A render is free when nobody claimed it or its claim is older than
        ``policy.delivery_lease`` (the replica that followed it died). Concurrent
        replicas claim disjoint renders (``FOR UPDATE SKIP LOCKED``).
        """
        claimed = await self._store.claim_renders(
            owner=self._delivery.owner, lease=self._policy.delivery_lease
        )
        adopted = 0
        for render in claimed:
            adapter = adapters.get(render.platform)
            if adapter is None:  # another process runs that platform
                await self._delivery.release(render.render_id)
                continue
            if render.render_id in self._tasks:
                continue
            lang = await self._owners.language(render)
            self.follow(render, adapter.replier_for(ref_of(render, lang)), lang)
            adopted += 1
        if adopted:
            log.info("took over %d render(s) nobody was following", adopted)
        return adopted

    async def keep_adopting(self, adapters: Mapping[str, ChatAdapter], every: float) -> None:
        """Call :meth:`adopt` every ``every`` seconds until cancelled."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.adopt(adapters)
            except Exception:  # the database blinked: the next round tries again
                log.warning("could not look for orphaned renders; retrying", exc_info=True)

    async def wait_idle(self) -> None:
        """Wait until every followed render is delivered or failed."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def aclose(self) -> None:
        """Stop following; unfinished renders stay in the store and resume at next start."""
        if self._adopter is not None:
            self._adopter.cancel()
            await asyncio.gather(self._adopter, return_exceptions=True)
            self._adopter = None
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _follow(self, render: RenderRecord, replier: Replier, lang: str | None) -> None:
        try:
            if not self.shared:
                await self._poll_until_done(render, replier, lang)
                return
            # Replicas share the database: follow only while holding the render's
            # claim, renewed, so that another replica adopts it if this one dies.
            if not await self._delivery.claim(render.render_id):
                log.info("render %s is followed by another replica", render.render_id)
                return
            async with self._delivery.holding_claim(render.render_id):
                await self._poll_until_done(render, replier, lang)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("render %s: unexpected error while following", render.render_id)

    async def _poll_until_done(
        self, render: RenderRecord, replier: Replier, lang: str | None
    ) -> None:
        policy = self._policy
        token: str | None = None
        started = self._clock()
        failures = 0
        progress: int | None = None
        estimate = ProgressEstimate(started)
        delay = policy.first_delay
        if render.status in _DONE and (render.output_url or render.error):
            done = RenderState(render.status)
            await self._delivery.finish(
                render, replier, lang, done, render.output_url, render.error, started
            )
            return
        # The backend finished somewhere between the last poll that saw it running and
        # the poll that saw it done: the midpoint is our estimate of its completion time.
        last_running = started
        while True:
            await self._wait_showing(delay, estimate, replier, lang)
            elapsed = self._clock() - started
            try:
                token, status = await self._poll(render, token)
            except Exception as exc:  # any failed poll (CancelledError is not an Exception)
                if render.status == RenderState.SUBMITTING and getattr(exc, "status", None) == 404:
                    # Recorded, then the process died before the backend accepted it.
                    await self._delivery.finish(
                        render, replier, lang, RenderState.FAILED, None, NEVER_STARTED, last_running
                    )
                    return
                # Transient or not, never give up silently: back off, and after
                # max_failures (or the deadline) tell the user the export failed.
                failures += 1
                log.info("render %s: poll failed (%s)", render.render_id, type(exc).__name__)
                retry_after = getattr(exc, "retry_after", 0.0)
                delay = max(retry_after, min(policy.max_interval * 2, 2.0**failures)) * (
                    0.5 + random.random()
                )
                delay = min(delay, policy.max_backoff)
                if failures >= policy.max_failures or elapsed > policy.deadline:
                    reason = NO_ANSWER
                    await self._delivery.finish(
                        render, replier, lang, RenderState.FAILED, None, reason, last_running
                    )
                    return
                continue
            failures = 0
            render.status = status.status
            progress = status.progress if status.progress is not None else progress
            if (
                status.status is not RenderState.PENDING
            ):  # a queued render's 0 % says nothing of its pace
                estimate.observe(self._clock(), status.progress)
            await self._store.update_render(
                render.render_id,
                status=status.status,
                progress=progress,
                attempts=render.attempts + 1,
            )
            render.attempts += 1
            if status.status.done:
                done_at = (last_running + self._clock()) / 2
                await self._delivery.finish(
                    render, replier, lang, status.status, status.output_url, status.error, done_at
                )
                return
            last_running = self._clock()
            if elapsed > policy.deadline:
                reason = TOO_LONG
                await self._delivery.finish(
                    render, replier, lang, RenderState.FAILED, None, reason, last_running
                )
                return
            await self._show(estimate, replier, lang)
            delay = policy.next_delay(elapsed, progress)

    async def _wait_showing(
        self, delay: float, estimate: ProgressEstimate, replier: Replier, lang: str | None
    ) -> None:
        """Sleep ``delay`` s, moving the progress bar every ``progress_every`` s meanwhile."""
        steps = max(1, math.ceil(delay / self._policy.progress_every - 1e-9))
        for step in range(steps):
            await asyncio.sleep(delay / steps)
            if step < steps - 1:
                await self._show(estimate, replier, lang)

    async def _show(self, estimate: ProgressEstimate, replier: Replier, lang: str | None) -> None:
        percent = estimate.advance(self._clock())
        if percent is not None:
            await quietly(replier.progress(t("export_started", lang, percent=percent), percent))

    async def _poll(self, render: RenderRecord, token: str | None) -> tuple[str, RenderStatus]:
        """One status poll; a missing token is fetched, a rejected one (1001) renewed once."""
        if token is None:
            token = await self._owners.token(render)
        return await renewing(
            token,
            lambda tok: self._client.render_status(tok, render.render_id),
            lambda rejected: self._owners.renew(render, rejected),
        )
