"""The operator's tools: ``/stats`` and ``/broadcast``, for ``NEMO_ADMIN_USERS`` only.

Nobody else learns they exist: they are in no help text or menu but the admins',
and anyone else who types them hears the usual "not a command I know".

What ``/stats`` reads is kept in the store, so it counts every replica and
survives restarts: each request leaves its outcome in a daily count (and its
error code when it failed) and marks its sender as seen (:meth:`Admin.after`);
renders and their delivery times are read from the renders table.

``/broadcast TEXT`` (Telegram only) goes to every Telegram user who has talked to
the bot, through the adapter's :class:`BulkSender`, which sends at the lowest
priority of its outbound scheduler: a user's answer always goes first. Each person
gets it at most once, whatever stops the bot: the broadcast claims a person in the
store before their message goes out and records the outcome after (sent, failed,
or unconfirmed when the answer was lost and the message may be in the chat), and a
restart skips everyone claimed. A stop between a claim and its outcome leaves that
person unconfirmed (never sent again: their message may be in the chat). The
contacts are walked in user-id order in batches of :data:`BATCH` sends at once;
the place after each batch is stored too. At the end the admin gets the counts:
sent (confirmed or not), failed, and how many of the sent could not be confirmed.
Replicas sharing the store each try to resume an interrupted broadcast; a lease on
``broadcast:<id>`` (renewed after every batch) lets one of them run it, and the
others wait for it (a killed replica's lease expires after ``NEMO_REPLICA_LEASE``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

from core.client import NemoClient
from core.config import Settings
from core.errors import ApiError, TransportError
from core.i18n import t
from core.request import Request
from core.types import ChatAdapter, ConversationRef, IncomingMessage
from storage.base import BroadcastOutcome, BroadcastRecord, Lease, Store

__all__ = ["BATCH", "Admin", "BulkSender", "percentile"]

log = logging.getLogger("nemo.admin")

#: People a broadcast sends to at once before it stores its place.
BATCH = 10
#: How long a stopping bot lets the broadcast's current batch finish (seconds).
_STOP_GRACE = 5.0
#: A person's "last seen" is written at most this often (seconds) per process.
_SEEN_EVERY = 60.0
_DAY = 86_400.0
_BROADCAST = re.compile(r"^\s*/broadcast(?:@\w+)?\b", re.IGNORECASE)


@runtime_checkable
class BulkSender(Protocol):
    """An adapter that can send low-priority bulk messages (Telegram's)."""

    async def send_bulk(self, chat_id: str, text: str) -> BroadcastOutcome:
        """Send ``text`` to ``chat_id`` after every user-facing message.

        ``sent``; ``failed`` when the platform refused it (nothing reached the chat);
        ``unconfirmed`` when it went out but its answer was lost (it may be there).
        """


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _counts(counts: Mapping[str, int], none: str) -> str:
    if not counts:
        return none
    return " · ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


class Admin:
    """Records activity for ``/stats``; answers ``/stats``; runs broadcasts."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        client: NemoClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._store = store
        self._client = client
        self._clock = clock
        self._seen: dict[tuple[str, str], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._adapters: Mapping[str, ChatAdapter] = {}
        self._owner = f"{settings.replica_name}:{uuid.uuid4().hex}"
        self._stopping = False
        self._sending: set[asyncio.Future[None]] = set()  # broadcasts past their lease

    def is_admin(self, msg: IncomingMessage) -> bool:
        """Whether the sender is one of ``NEMO_ADMIN_USERS``."""
        return self._settings.is_admin(msg.user_id)

    # -- activity --------------------------------------------------------------------

    async def after(self, req: Request) -> None:
        """Count the request's outcome (and error) for today; mark its sender seen. Quiet."""
        msg = req.msg
        try:
            await self._store.add_daily("request", req.outcome)
            if req.error:
                await self._store.add_daily("error", req.error)
            key, now = (msg.platform, msg.user_id), self._clock()
            if now - self._seen.get(key, -_SEEN_EVERY) >= _SEEN_EVERY or not msg.is_group:
                # A private chat is always written: it is where a broadcast goes.
                self._seen[key] = now
                dm = None if msg.is_group else msg.chat_id
                await self._store.note_contact(msg.platform, msg.user_id, dm)
        except Exception:  # statistics never cost a user their answer
            log.warning("could not record a request for /stats", exc_info=True)

    # -- /stats ----------------------------------------------------------------------

    async def stats(self, req: Request) -> None:
        """The numbers an operator asks for first."""
        now = self._clock()
        week = now - 7 * _DAY
        first_day = time.strftime("%Y-%m-%d", time.gmtime(now - 6 * _DAY))
        store, none = self._store, req.words("none")
        delays = await store.delivery_delays(since=week)
        p50, p95 = percentile(delays, 0.5), percentile(delays, 0.95)
        lines = [
            req.words(
                "stats",
                today=await store.count_contacts(since=now - now % _DAY),
                week=await store.count_contacts(since=week),
                requests=_counts(await store.read_daily("request", since_day=first_day), none),
                renders=_counts(await store.render_outcomes(since=week), none),
                p50=none if p50 is None else f"{p50:.1f} s",
                p95=none if p95 is None else f"{p95:.1f} s",
                errors=_counts(await store.read_daily("error", since_day=first_day), none),
            )
        ]
        token = self._settings.nemo_token
        if token is not None:
            try:
                c = await self._client.credits(token.get_secret_value())
                lines.append(
                    req.words(
                        "stats_credits", available=c.available, frozen=c.frozen, total=c.total
                    )
                )
            except (ApiError, TransportError) as exc:
                log.warning("/stats: the operator token's credits could not be read (%s)", exc)
                lines.append(req.words("stats_credits_unknown"))
        await req.replier.send_text("\n".join(lines), private=True)

    # -- /broadcast ------------------------------------------------------------------

    def use(self, adapters: Mapping[str, ChatAdapter]) -> None:
        """The adapters broadcasts send through (the service's, by platform)."""
        self._adapters = adapters

    async def broadcast(self, req: Request) -> None:
        """Start sending the text after ``/broadcast`` to every Telegram user."""
        msg = req.msg
        text = _BROADCAST.sub("", msg.text, count=1).strip() if msg.intent is None else msg.text
        text = text.strip()
        sender = self._adapters.get("telegram")
        if msg.platform != "telegram" or not isinstance(sender, BulkSender):
            await req.say("broadcast_telegram_only", private=True)
            return
        if not text:
            await req.say("broadcast_usage", private=True)
            return
        record = await self._store.start_broadcast(
            "telegram", text, admin_chat=msg.chat_id, admin_user=msg.user_id
        )
        log.info("broadcast %d started", record.broadcast_id)
        await req.say("broadcast_started", private=True)
        self._spawn(record, sender)

    async def resume(self) -> int:
        """Go on with the broadcasts a stop interrupted; returns how many."""
        sender = self._adapters.get("telegram")
        if not isinstance(sender, BulkSender):
            return 0
        pending = await self._store.unfinished_broadcasts()
        for record in pending:
            log.info("broadcast %d resumes after user %s", record.broadcast_id, record.cursor)
            self._spawn(record, sender)
        return len(pending)

    async def wait_idle(self) -> None:
        """Wait for the broadcasts running now to finish."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Stop the broadcasts; the next start goes on with whoever was not reached.

        The batch being sent gets :data:`_STOP_GRACE` seconds to end, so its people
        are recorded as sent rather than left unconfirmed.
        """
        self._stopping = True
        if self._sending:  # the others only wait for a lease: nothing to finish
            await asyncio.wait(list(self._sending), timeout=_STOP_GRACE)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _spawn(self, record: BroadcastRecord, sender: BulkSender) -> None:
        task = asyncio.create_task(self._run(record, sender), name="broadcast")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _claim(self, key: str, broadcast_id: int) -> Lease | None:
        """The broadcast's lease, waited for while another replica holds it.

        None once the broadcast is finished (by whoever held it). A replica killed
        mid-broadcast stops renewing; its lease expires and a waiting one goes on.
        """
        ttl = self._settings.replica_lease
        try:
            while not self._stopping:
                lease = await self._store.try_acquire_lease(key, owner=self._owner, seq=0, ttl=ttl)
                pending = await self._store.unfinished_broadcasts()
                if all(b.broadcast_id != broadcast_id for b in pending):
                    if lease is not None:  # the holder before us finished it
                        await self._store.release_lease(lease)
                    break
                if lease is not None:
                    return lease
                await self._store.wait_for_lease(key, min(ttl / 3, 5.0))
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._store.abandon_wait(key, owner=self._owner, seq=0))
            raise
        # leave no waiter behind: the queue of this key is only for its broadcast
        await self._store.abandon_wait(key, owner=self._owner, seq=0)
        return None

    async def _run(self, record: BroadcastRecord, sender: BulkSender) -> None:
        key, ttl = f"broadcast:{record.broadcast_id}", self._settings.replica_lease
        try:
            lease = await self._claim(key, record.broadcast_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "broadcast %d: could not take it up; it goes on at the next start",
                record.broadcast_id,
            )
            return
        if lease is None:
            log.info("broadcast %d was finished elsewhere", record.broadcast_id)
            return
        task = asyncio.current_task()
        if task is not None:
            self._sending.add(task)
        try:
            await self._send_all(record, sender, lease, ttl)
        finally:
            self._sending.discard(task)
            with contextlib.suppress(Exception):
                await asyncio.shield(self._store.release_lease(lease))

    async def _send_all(
        self, record: BroadcastRecord, sender: BulkSender, lease: Lease, ttl: float
    ) -> None:
        bid, cursor = record.broadcast_id, record.cursor
        try:
            while True:
                if self._stopping:
                    log.info("broadcast %d paused by the stop; it goes on at the next start", bid)
                    return
                batch = await self._store.broadcast_targets(
                    record.platform, after=cursor, limit=BATCH, unclaimed_in=bid
                )
                if not batch:
                    break
                await asyncio.gather(
                    *(self._deliver(bid, sender, user, chat, record.text) for user, chat in batch)
                )
                cursor = batch[-1][0]
                await self._store.advance_broadcast(bid, cursor=cursor)
                renewed = await self._store.renew_lease(lease, ttl=ttl)
                if renewed is None:  # it expired and another replica took it over
                    log.warning("broadcast %d: another replica took it over", bid)
                    return
                lease = renewed
            done = await self._store.finish_broadcast(bid)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("broadcast %d stopped; it goes on at the next start", bid)
            return
        if done is None:  # finished already (another replica reported it)
            return
        sent = done.sent + done.unconfirmed
        log.info(
            "broadcast %d done: %d sent (%d unconfirmed), %d failed",
            done.broadcast_id,
            sent,
            done.unconfirmed,
            done.failed,
        )
        adapter = self._adapters.get(done.platform)
        if adapter is not None:
            lang = await self._language(done)
            ref = ConversationRef(done.platform, done.admin_chat, done.admin_user, language=lang)
            text = t("broadcast_done", lang, sent=sent, failed=done.failed)
            if done.unconfirmed:
                text += " " + t("broadcast_unconfirmed", lang, count=done.unconfirmed)
            with contextlib.suppress(Exception):
                await adapter.replier_for(ref).send_text(text)

    async def _deliver(
        self, broadcast_id: int, sender: BulkSender, user_id: str, chat_id: str, text: str
    ) -> None:
        """Claim, send, record: one person's message, never twice."""
        if not await self._store.claim_broadcast_recipient(broadcast_id, user_id):
            return  # claimed before (a run this one resumes, or another replica)
        outcome = await self._send(sender, chat_id, text)
        try:
            await self._store.settle_broadcast_recipient(broadcast_id, user_id, outcome)
        except Exception:  # the claim stays: counted as unconfirmed, never sent again
            log.warning(
                "broadcast %d: an outcome could not be recorded", broadcast_id, exc_info=True
            )

    async def _send(self, sender: BulkSender, chat_id: str, text: str) -> BroadcastOutcome:
        try:
            return await sender.send_bulk(chat_id, text)
        except asyncio.CancelledError:
            raise
        except Exception:  # nobody can say whether it reached the chat
            log.warning("broadcast: a message could not be sent", exc_info=True)
            return "unconfirmed"

    async def _language(self, record: BroadcastRecord) -> str | None:
        user = await self._store.get_user(record.platform, record.admin_user)
        return user.language if user else None
