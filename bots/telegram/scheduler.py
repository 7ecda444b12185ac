"""One prioritized outbound scheduler for every Bot API call that puts something in a chat.

Telegram limits a bot per chat (about one message a second), per group (20 a
minute) and overall (``TELEGRAM_OVERALL_RATE``, 30 a second by default). With
hundreds of people asking at once the overall budget is what they wait for, so
it is spent by priority (:class:`Priority`): final answers and videos first,
then a request's first visible message, then intermediate stream updates, then
chat actions (which are dropped rather than queued when they go stale), and last
an operator's broadcast (``BULK``), which gets a slot only when nothing a user
waits for is ready to go.

The rules:

* A chat sends one call at a time and keeps its pace (``ChatLimits``); calls that
  create messages leave in the order they were submitted, whatever their priority
  (a later, more urgent message lifts the ones ahead of it instead of passing them).
* Intermediate updates and chat actions across all chats go out at most
  ``minor_per_second`` times a second, overall cap or not: in a crowd they are what
  gets skipped (coalesced), so that first and final messages and the backend streams
  keep the process's CPU.
* Callers coalesce intermediate edits themselves: a message being streamed has at
  most one job waiting here, and that job sends the newest text when its turn comes
  (see :class:`bots.telegram.replier.LiveMessage`).
* A 429 pauses only its chat, and the job goes back to the head of its chat's queue;
  when several chats are refused within a second it is the overall limit, and the
  shared :class:`~bots.telegram.budget.OverallBudget` pauses too. Nothing is dropped.
* A call that may have reached Telegram although its answer could not be read is
  never made again as a new message: its job fails with :class:`MaybeSent`. Calls
  that are safe to repeat (edits, drafts) and calls that certainly were not sent
  (no connection) are tried again.

Nothing here waits on a chat for the backend: callers submit and go on.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import heapq
import itertools
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)

from bots.telegram.budget import NoBudget, OverallBudget

__all__ = ["ChatLimits", "Job", "MaybeSent", "OutboundScheduler", "Priority", "was_not_sent"]

log = logging.getLogger(__name__)

#: A chat action older than this is not worth sending any more.
_ACTION_STALE = 3.0
#: Refusals from this many different chats within a second mean the overall limit.
_OVERALL_429_CHATS = 3
#: How often a call that certainly did not leave (or an edit) is tried before giving up.
_MAX_ATTEMPTS = 5


class Priority(enum.IntEnum):
    """What goes first when the budget is short (lower goes first)."""

    FINAL = 0  #: final answers, whole messages, video deliveries
    FIRST = 1  #: the first visible message of a request
    UPDATE = 2  #: intermediate edits and drafts of a growing reply
    ACTION = 3  #: "typing…" and the like
    BULK = 4  #: an operator's broadcast: only when no user is waiting for anything


#: What the ``minor_per_second`` pace applies to.
_MINOR = frozenset({Priority.UPDATE, Priority.ACTION})


class MaybeSent(TelegramError):
    """The call was made but its answer could not be read: it may have reached the chat."""


def was_not_sent(exc: BaseException) -> bool:
    """Whether ``exc`` proves the request never reached the server (safe to send again)."""
    not_sent = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
    return isinstance(exc, NetworkError) and isinstance(exc.__cause__, not_sent)


def _answered(exc: BaseException) -> bool:
    """Whether the server's answer was read: a refusal, or an error status with its text.

    (PTB derives BadRequest from NetworkError, so the refusals are named one by one; a
    bare NetworkError without a cause is an error status whose body PTB could read. A
    time-out, a broken connection or an unparsable body leave the outcome unknown.)
    """
    refusals = (BadRequest, Forbidden, InvalidToken, Conflict, ChatMigrated, EndPointNotFound)
    if isinstance(exc, refusals):
        return True
    return type(exc) is NetworkError and exc.__cause__ is None


def _seconds(value: float | timedelta) -> float:
    # PTB 22 gives int seconds, later versions a timedelta.
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


@dataclass(frozen=True, slots=True)
class ChatLimits:
    """Telegram's per-chat pacing: about one call a second with short bursts, and a
    per-minute cap in groups.

    A chat earns one call every ``private_interval`` (``group_interval``) seconds and
    may save up ``burst`` of them. Intermediate updates leave one saved call alone,
    so that the final answer can follow the last update at once.
    """

    private_interval: float = 1.0
    group_interval: float = 1.0
    burst: int = 3
    #: Intermediate updates in a group go slower, so that its 20-a-minute budget is
    #: left for final answers.
    group_update_interval: float = 3.0
    group_per_minute: int = 20
    #: Of a group's per-minute budget, this many calls are kept for final answers.
    group_reserve: int = 4


@dataclass(eq=False, slots=True)
class Job:
    """One call waiting for its turn; ``future`` gets the call's result."""

    chat_id: int
    priority: int
    call: Callable[[], Awaitable[Any]]
    creates: bool
    repeatable: bool
    seq: int
    future: asyncio.Future[Any]
    attempts: int = 0

    def __await__(self) -> Any:
        return self.future.__await__()


@dataclass(eq=False, slots=True)
class _Chat:
    chat_id: int
    jobs: list[Job] = field(default_factory=list)
    busy: bool = False
    last: float = -math.inf
    tokens: float = math.inf  # saved calls at ``last`` (capped by the burst)
    paused_until: float = 0.0
    recent: collections.deque[float] = field(default_factory=collections.deque)
    version: int = 0

    @property
    def is_group(self) -> bool:
        return self.chat_id < 0

    def candidate(self) -> tuple[int, int, Job]:
        """The job to send next: ``(effective priority, seq, job)``.

        Messages keep their order: the oldest message-creating job stands for every
        message-creating job of the chat, with the most urgent priority among them.
        """
        best: tuple[int, int, Job] | None = None
        head: Job | None = None
        head_priority = math.inf
        for job in self.jobs:
            if job.creates:
                head = head or job
                head_priority = min(head_priority, job.priority)
            elif best is None or (job.priority, job.seq) < best[:2]:
                best = (job.priority, job.seq, job)
        if head is not None and (best is None or (head_priority, head.seq) < best[:2]):
            best = (int(head_priority), head.seq, head)
        assert best is not None
        return best


class OutboundScheduler:
    """Spends one platform's send budget by priority; see the module docstring.

    ``submit`` queues a call and returns its :class:`Job` at once (await it for the
    result); ``chat_action`` queues a best-effort chat action. ``start`` before
    use, ``aclose`` when done (pending jobs are cancelled).
    """

    def __init__(
        self,
        *,
        budget: OverallBudget | None = None,
        limits: ChatLimits | None = None,
        max_in_flight: int = 32,
        minor_per_second: float = 40.0,
    ) -> None:
        self.budget = budget or NoBudget()
        self.limits = limits or ChatLimits()
        self._chats: dict[int, _Chat] = {}
        self._ready: list[tuple[int, int, int, _Chat]] = []
        self._timed: list[tuple[float, int, int, _Chat]] = []
        self._actions: collections.OrderedDict[int, tuple[Callable[[], Awaitable[Any]], float]]
        self._actions = collections.OrderedDict()
        self._seq = itertools.count()
        self._slots = asyncio.Semaphore(max_in_flight)
        # Intermediate updates and chat actions across all chats, at most this often, even
        # without an overall cap: a thousand chats each updated every second would spend
        # the process's CPU on Telegram calls that the final answers supersede anyway.
        self._minor_gap = 1.0 / minor_per_second if minor_per_second > 0 else 0.0
        self._next_minor = 0.0
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._calls: set[asyncio.Task[None]] = set()
        self._refusals: collections.deque[tuple[float, int]] = collections.deque()
        self._swept = 0.0
        self.closed = False
        #: Counters for logs and benchmarks: calls made, 429s received, actions dropped.
        self.stats: collections.Counter[str] = collections.Counter()

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start sending (idempotent)."""
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.create_task(self._run(), name="telegram-outbox")
            self._loop_task.add_done_callback(self._loop_ended)

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("telegram: the outbound scheduler stopped", exc_info=task.exception())

    async def aclose(self) -> None:
        """Stop sending; calls in flight are cancelled and queued jobs fail as cancelled."""
        self.closed = True
        tasks = [t for t in (self._loop_task, *self._calls) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop_task = None
        for chat in self._chats.values():
            for job in chat.jobs:
                job.future.cancel()
            chat.jobs.clear()
        self._actions.clear()

    @property
    def pending(self) -> int:
        """Jobs waiting (not counting chat actions)."""
        return sum(len(chat.jobs) for chat in self._chats.values())

    # -- submitting --------------------------------------------------------------------

    def submit(
        self,
        chat_id: int,
        call: Callable[[], Awaitable[Any]],
        *,
        priority: Priority,
        creates: bool,
        repeatable: bool = False,
    ) -> Job:
        """Queue ``call`` for ``chat_id``; ``creates`` marks a call that posts a new message
        (those keep their order), ``repeatable`` one that may safely be made twice."""
        loop = asyncio.get_running_loop()
        job = Job(
            chat_id, int(priority), call, creates, repeatable, next(self._seq), loop.create_future()
        )
        if self.closed:
            job.future.cancel()
            return job
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = _Chat(chat_id)
        chat.jobs.append(job)
        self._schedule(chat)
        return job

    def hurry(self, job: Job, priority: Priority) -> None:
        """Raise a queued job's priority (a streamed message became the final answer)."""
        if priority >= job.priority or job.future.done():
            return
        job.priority = int(priority)
        chat = self._chats.get(job.chat_id)
        if chat is not None and job in chat.jobs:
            self._schedule(chat)

    def withdraw(self, job: Job) -> None:
        """Forget a queued job that is no longer wanted (a draft overtaken by the final text)."""
        chat = self._chats.get(job.chat_id)
        if chat is not None and job in chat.jobs:
            chat.jobs.remove(job)
            self._schedule(chat)
        job.future.cancel()

    def chat_action(self, chat_id: int, call: Callable[[], Awaitable[Any]]) -> None:
        """Queue a chat action; a newer one for the chat replaces it; dropped when stale."""
        if self.closed:
            return
        self._actions.pop(chat_id, None)
        self._actions[chat_id] = (call, asyncio.get_running_loop().time())
        self._wake.set()

    # -- the loop ----------------------------------------------------------------------

    def _interval(self, chat: _Chat) -> float:
        limits = self.limits
        return limits.group_interval if chat.is_group else limits.private_interval

    def _saved(self, chat: _Chat, now: float) -> float:
        """The calls ``chat`` has saved up at ``now``."""
        interval, burst = self._interval(chat), self.limits.burst
        if interval <= 0:
            return burst
        return min(burst, chat.tokens + (now - chat.last) / interval)

    def _ready_at(self, chat: _Chat, priority: int) -> float:
        limits = self.limits
        update = priority >= Priority.UPDATE
        need = 2.0 if update and limits.burst >= 2 else 1.0
        interval = self._interval(chat)
        tokens = min(limits.burst, chat.tokens)
        at = chat.paused_until
        if interval > 0 and tokens < need:
            at = max(at, chat.last + (need - tokens) * interval)
        if not chat.is_group:
            return at
        if update:
            at = max(at, chat.last + limits.group_update_interval)
        cap = limits.group_per_minute - (limits.group_reserve if update else 0)
        recent = chat.recent
        if cap > 0 and len(recent) >= cap:
            at = max(at, recent[len(recent) - cap] + 60.5)
        return at

    def _schedule(self, chat: _Chat) -> None:
        chat.version += 1
        if chat.busy or not chat.jobs:
            return
        priority, seq, _ = chat.candidate()
        at = self._ready_at(chat, priority)
        if at <= asyncio.get_running_loop().time():
            heapq.heappush(self._ready, (priority, seq, chat.version, chat))
        else:
            heapq.heappush(self._timed, (at, seq, chat.version, chat))
        self._wake.set()

    def _promote(self, now: float) -> None:
        while self._timed and self._timed[0][0] <= now:
            _, _, version, chat = heapq.heappop(self._timed)
            if version == chat.version:
                self._schedule(chat)

    def _peek(self) -> _Chat | None:
        while self._ready:
            _, _, version, chat = self._ready[0]
            if version == chat.version:
                return chat
            heapq.heappop(self._ready)
        return None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.closed:
            self._promote(loop.time())
            if self._peek() is None and self._fresh_action(loop.time()) is None:
                self._wake.clear()
                timeout = self._timed[0][0] - loop.time() if self._timed else None
                # (Not wait_for: on Python 3.11 it can swallow a cancellation that
                # arrives as the event is set, and aclose() would wait forever.)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                continue
            top = self._peek()
            minor = top is None or self._ready[0][0] in _MINOR
            if minor and (pause := self._next_minor - loop.time()) > 0:
                self._wake.clear()  # an urgent job arriving meanwhile goes at once
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._wake.wait()
                continue
            await self._slots.acquire()
            delay = await self.budget.reserve()
            ticket = self.budget.taken()
            if delay > 0:
                await asyncio.sleep(delay)
            now = loop.time()
            self._promote(now)
            chat = self._peek()
            action = None
            if chat is None or self._ready[0][0] >= Priority.BULK:  # a user's action first
                action = self._fresh_action(now, take=True)
            if action is not None:
                self._launch(self._act(action), ticket)
                self._next_minor = max(now, self._next_minor) + self._minor_gap
            elif chat is not None:
                priority = heapq.heappop(self._ready)[0]
                self._dispatch(chat, chat.candidate()[2], now, ticket)
                if priority in _MINOR:
                    self._next_minor = max(now, self._next_minor) + self._minor_gap
            else:
                self._slots.release()  # the slot is spent, but nothing was left to send
                self.budget.answered(ticket)
            if now - self._swept > 60:
                self._sweep(now)

    def _fresh_action(
        self, now: float, *, take: bool = False
    ) -> Callable[[], Awaitable[Any]] | None:
        """The oldest chat action still worth sending (removed from the queue if ``take``)."""
        while self._actions:
            chat_id, (call, at) = next(iter(self._actions.items()))
            if now - at <= _ACTION_STALE:
                if take:
                    del self._actions[chat_id]
                return call
            del self._actions[chat_id]
            self.stats["actions_dropped"] += 1
        return None

    async def _act(self, call: Callable[[], Awaitable[Any]]) -> None:
        try:
            await call()
            self.stats["actions"] += 1
        except RetryAfter:
            self.stats["429"] += 1
        except Exception as exc:  # a chat action is a nicety
            log.debug("telegram: chat action failed (%s)", type(exc).__name__)

    def _launch(self, coro: Awaitable[None], ticket: object = None) -> None:
        task = asyncio.ensure_future(coro)
        self._calls.add(task)
        task.add_done_callback(lambda done: self._finished(done, ticket))

    def _finished(self, task: asyncio.Task[None], ticket: object = None) -> None:
        self._calls.discard(task)
        self._slots.release()
        self.budget.answered(ticket)
        self._wake.set()

    def _dispatch(self, chat: _Chat, job: Job, now: float, ticket: object = None) -> None:
        chat.jobs.remove(job)
        chat.busy = True
        chat.version += 1
        chat.tokens = self._saved(chat, now) - 1
        chat.last = now
        if chat.is_group:
            chat.recent.append(now)
            while chat.recent and now - chat.recent[0] > 61:
                chat.recent.popleft()
        self._launch(self._execute(chat, job), ticket)

    async def _execute(self, chat: _Chat, job: Job) -> None:
        loop = asyncio.get_running_loop()
        try:
            if job.future.done():  # its caller gave up (cancelled)
                return
            try:
                result = await job.call()
            except RetryAfter as exc:
                await self._refused(chat, job, _seconds(exc.retry_after), loop.time())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed(chat, job, exc, loop.time())
            else:
                self.stats["calls"] += 1
                if not job.future.done():
                    job.future.set_result(result)
        finally:
            # The chat's next call is counted from this answer, not from the dispatch:
            # Telegram counts a call when it arrives, and a call delayed on its way
            # (a busy machine, a slow network) must not bring the next one closer to it
            # than the chat's interval. (The flight time is not refilled; a call never
            # arrives before its predecessor was answered, as the chat sends one at a time.)
            chat.last = max(chat.last, loop.time())
            chat.busy = False
            self._schedule(chat)

    async def _refused(self, chat: _Chat, job: Job, seconds: float, now: float) -> None:
        """A 429: pause the chat (and the budget, when many chats hear it) and requeue."""
        self.stats["429"] += 1
        chat.paused_until = max(chat.paused_until, now + seconds)
        chat.jobs.insert(0, job)
        self._refusals.append((now, chat.chat_id))
        while self._refusals and now - self._refusals[0][0] > 1.0:
            self._refusals.popleft()
        if len({c for _, c in self._refusals}) >= _OVERALL_429_CHATS:
            log.warning("telegram: overall flood limit hit; pausing sends for %.0f s", seconds)
            await self.budget.pause(seconds)

    def _failed(self, chat: _Chat, job: Job, exc: Exception, now: float) -> None:
        job.attempts += 1
        retry = was_not_sent(exc) or (job.repeatable and not _answered(exc))
        if retry and job.attempts < _MAX_ATTEMPTS:
            log.info("telegram: %s; trying again", type(exc).__name__)
            chat.paused_until = max(chat.paused_until, now + 0.5 * job.attempts)
            chat.jobs.insert(0, job)
            return
        if not _answered(exc) and not was_not_sent(exc):
            # Whatever happened, the message may be in the chat: don't post it again.
            self.stats["maybe_sent"] += 1
            error: Exception = MaybeSent(f"answer unreadable ({type(exc).__name__})")
            error.__cause__ = exc
            exc = error
        if not job.future.done():
            job.future.set_exception(exc)

    def _sweep(self, now: float) -> None:
        """Forget chats with nothing queued whose pacing no longer matters."""
        self._swept = now
        for chat_id, chat in list(self._chats.items()):
            if not chat.jobs and not chat.busy and now - chat.last > 61:
                del self._chats[chat_id]
