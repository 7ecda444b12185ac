"""The Store protocol and the rows it keeps.

Everything the bot remembers goes through :class:`Store`; nothing outside
``storage/`` writes SQL. Two implementations: :class:`storage.sqlite.SQLiteStore`
(embedded default) and :class:`storage.postgres.PostgresStore` (several replicas on
one database). Times are Unix seconds (float) from the store's clock. Rows are plain
dataclasses.

Besides users, sessions and renders, the protocol carries the primitives that
replicas coordinate through: per-session leases with waiting requests
(:meth:`Store.try_acquire_lease`), render claims (:meth:`Store.claim_renders`),
stored inbound updates (:meth:`Store.store_update`) and persistent rate-limit
counters (:meth:`Store.hit_counter`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Protocol

#: How one broadcast message ended (``unconfirmed``: sent, but its answer was lost).
BroadcastOutcome = Literal["sent", "failed", "unconfirmed"]


@dataclass(slots=True)
class UserRecord:
    """A chat user (platform, user id) and their NemoVideo identity."""

    platform: str
    user_id: str
    client_id: str
    token: str | None = field(default=None, repr=False)
    backend_user_id: str | None = None
    token_expires_at: float | None = None
    language: str | None = None
    token_minted_at: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(slots=True)
class SessionRecord:
    """One project: a (platform, user, chat) and its backend session."""

    platform: str
    user_id: str
    chat_id: str
    session_id: str
    task_id: str | None = None
    draft_json: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(slots=True)
class RenderRecord:
    """An export job and where to deliver it."""

    render_id: str
    session_id: str
    platform: str
    user_id: str
    chat_id: str
    thread_id: str | None = None
    reply_to: str | None = None
    ref_extra: str | None = None
    status: str = "pending"
    progress: int = 0
    output_url: str | None = None
    error: str | None = None
    attempts: int = 0
    summary: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    completed_at: float | None = None
    delivered_at: float | None = None
    claimed_at: float | None = None
    claimed_by: str | None = None


@dataclass(slots=True)
class ProjectRecord:
    """One project a user has had: a backend session, kept after a new one replaces it."""

    platform: str
    user_id: str
    session_id: str
    chat_id: str
    task_id: str | None = None
    title: str | None = None
    """The user's first prompt in the project (None until they wrote one)."""
    created_at: float = 0.0
    updated_at: float = 0.0
    has_video: bool = False
    """Whether a render of it completed with a file (read from renders, not stored)."""


@dataclass(slots=True)
class BroadcastRecord:
    """A ``/broadcast``: its text, who asked (for the final count) and how far it got."""

    broadcast_id: int
    platform: str
    text: str
    admin_chat: str
    admin_user: str
    cursor: str | None = None
    """The last user id reached, in user id order (None: nobody yet)."""
    sent: int = 0
    """Messages the platform confirmed (added up from the recipients when it finishes)."""
    failed: int = 0
    created_at: float = 0.0
    finished_at: float | None = None
    unconfirmed: int = 0
    """Messages that may have reached their chat but were never confirmed (their
    answer was lost, or a crash came between claim and outcome); never sent again."""


class StoreError(RuntimeError):
    """The store cannot be used as configured. ``str()`` is one line for the operator."""


class IntegrityError(StoreError):
    """A write broke a constraint (a duplicate key, a session without its user)."""


@dataclass(slots=True, frozen=True)
class Lease:
    """A held per-session lease.

    ``token`` is the fencing counter: it grows by one with every new claim of the
    key, so a holder whose lease expired and was claimed again can tell (its renew
    fails) and writes guarded by the token can refuse a stale holder.
    """

    key: str
    owner: str
    token: int
    expires_at: float


@dataclass(slots=True)
class InboundUpdate:
    """A platform update stored before it was answered (unique by platform + update_id)."""

    platform: str
    update_id: int
    payload: str
    received_at: float = 0.0
    attempts: int = 0
    """How many times it was claimed: above 1, an earlier handler started it and died."""
    stage: str | None = None
    """Free-form progress mark set by the handler (e.g. ``sent`` once the backend has it)."""
    claimed_by: str | None = None
    claimed_at: float | None = None
    done_at: float | None = None


@dataclass(slots=True, frozen=True)
class CounterHit:
    """The outcome of :meth:`Store.hit_counter`."""

    allowed: bool
    """False when the hit would have gone over the limit (and was not counted)."""
    count: int
    """The window's count after this hit (unchanged when refused)."""
    window_start: float
    resets_at: float
    """When the window ends and the count starts from 0 again."""


def window_bounds(now: float, window: float) -> tuple[float, float]:
    """The fixed, epoch-aligned window of length ``window`` that holds ``now``."""
    if window <= 0:
        raise ValueError("window must be positive")
    start = math.floor(now / window) * window
    return start, start + window


class Store(Protocol):
    """Async persistence for users, sessions and renders. Safe for many concurrent tasks."""

    async def open(self) -> None:
        """Connect and migrate."""

    async def close(self) -> None:
        """Flush and close."""

    async def ping(self) -> None:
        """Raise unless the database can take a write right now (a health check)."""

    async def get_user(self, platform: str, user_id: str) -> UserRecord | None:
        """The user, or None."""

    async def save_user(self, user: UserRecord) -> None:
        """Insert or update (by platform + user_id); sets timestamps."""

    async def add_user(self, user: UserRecord) -> UserRecord:
        """Insert ``user`` unless one with its platform + user_id exists; the stored user.

        One atomic step: first contact arriving twice at once (two requests, two
        replicas) keeps one user and one client id, the first one stored.
        """

    async def get_session(self, platform: str, user_id: str, chat_id: str) -> SessionRecord | None:
        """The session of this user in this chat, or None."""

    async def save_session(self, session: SessionRecord) -> None:
        """Insert or replace (by platform + user_id + chat_id); sets timestamps.

        The session also becomes (or stays) one of the user's projects
        (:meth:`list_projects`), marked as used now.
        """

    async def save_draft(self, platform: str, user_id: str, chat_id: str, draft_json: str) -> None:
        """Remember the last draft seen for this session."""

    # -- history -------------------------------------------------------------------

    async def title_project(self, platform: str, user_id: str, session_id: str, title: str) -> bool:
        """Name the project after ``title`` unless it has a name; marks it used now.

        True when the title was set (the project had none).
        """

    async def list_projects(
        self, platform: str, user_id: str, *, limit: int = 10
    ) -> list[ProjectRecord]:
        """The user's projects, most recently used first, with ``has_video`` filled in."""

    async def get_project(
        self, platform: str, user_id: str, session_id: str
    ) -> ProjectRecord | None:
        """One of the user's projects, or None."""

    async def last_video(self, session_id: str) -> RenderRecord | None:
        """The newest render of the session that completed with a file, or None."""

    # -- admin: activity, daily counts, broadcasts ------------------------------------

    async def note_contact(self, platform: str, user_id: str, dm_chat_id: str | None) -> None:
        """Someone talked to the bot now (``dm_chat_id``: their private chat, if this was one)."""

    async def count_contacts(self, *, since: float) -> int:
        """How many people (any platform) talked to the bot since ``since``."""

    async def add_daily(self, kind: str, key: str, amount: int = 1) -> None:
        """Add ``amount`` to today's (UTC) count of (``kind``, ``key``)."""

    async def read_daily(self, kind: str, *, since_day: str) -> dict[str, int]:
        """The counts of ``kind`` by key, summed over the days from ``since_day`` (YYYY-MM-DD)."""

    async def render_outcomes(self, *, since: float) -> dict[str, int]:
        """Renders created since ``since``, counted by status."""

    async def delivery_delays(self, *, since: float, limit: int = 10_000) -> list[float]:
        """Seconds from completion to delivery of videos delivered since ``since`` (newest)."""

    async def start_broadcast(
        self, platform: str, text: str, *, admin_chat: str, admin_user: str
    ) -> BroadcastRecord:
        """Record a new broadcast (nobody reached yet)."""

    async def broadcast_targets(
        self, platform: str, *, after: str | None, limit: int, unclaimed_in: int | None = None
    ) -> list[tuple[str, str]]:
        """(user id, chat to send to) of ``platform``'s contacts after ``after``, by user id.

        ``unclaimed_in``: only the contacts broadcast ``unclaimed_in`` has not claimed.
        """

    async def claim_broadcast_recipient(self, broadcast_id: int, user_id: str) -> bool:
        """Record that the broadcast is about to send to ``user_id``; False if it was already
        (or the broadcast is finished: its recipient rows are gone, nobody is claimed again).

        The claim is committed before the message goes out, so nobody, on any
        replica or after any restart, sends it to this person again.
        """

    async def settle_broadcast_recipient(
        self, broadcast_id: int, user_id: str, outcome: BroadcastOutcome
    ) -> None:
        """Record how the claimed send ended: ``sent``, ``failed`` or ``unconfirmed``."""

    async def advance_broadcast(self, broadcast_id: int, *, cursor: str) -> None:
        """Move the broadcast's cursor to ``cursor`` (the place a restart goes on from).

        The counts come from the recipients' outcomes, added up by :meth:`finish_broadcast`.
        """

    async def finish_broadcast(self, broadcast_id: int) -> BroadcastRecord | None:
        """Mark the broadcast done and add its recipients' outcomes to its counts.

        One transaction: claims left without an outcome (a crash between the claim
        and the answer) count as unconfirmed; the recipient rows are then dropped.
        The final record, or None if the broadcast is unknown or was finished already.
        """

    async def unfinished_broadcasts(self) -> list[BroadcastRecord]:
        """Broadcasts not finished (a restart goes on with them), oldest first."""

    async def add_render(self, render: RenderRecord) -> None:
        """Persist a new render job."""

    async def delete_render(self, render_id: str) -> None:
        """Forget a render that never started (its submission failed)."""

    async def get_render(self, render_id: str) -> RenderRecord | None:
        """The render, or None."""

    async def update_render(
        self,
        render_id: str,
        *,
        status: str | None = None,
        progress: int | None = None,
        output_url: str | None = None,
        error: str | None = None,
        attempts: int | None = None,
    ) -> None:
        """Update the given fields (None leaves a field as it is).

        A status of completed or failed sets completed_at.
        """

    async def claim_delivery(self, render_id: str, *, owner: str, lease: float = 300.0) -> bool:
        """Claim the right to deliver a render for ``lease`` seconds; True for one owner.

        The owner may claim again to renew its lease (while a long upload runs). A
        claim nobody renewed expires, so a process that died mid-send does not keep
        the video from its user forever.
        """

    async def mark_delivered(self, render_id: str, *, owner: str) -> None:
        """The owner's video reached the chat: never deliver this render again."""

    async def release_delivery(self, render_id: str, *, owner: str) -> None:
        """The owner gives its claim back (delivery failed or was stopped)."""

    async def undelivered_renders(self) -> list[RenderRecord]:
        """Renders not yet delivered (any status), oldest first."""

    # -- per-session leases -------------------------------------------------------------

    async def try_acquire_lease(
        self, key: str, *, owner: str, seq: int, ttl: float
    ) -> Lease | None:
        """Queue as a waiter for ``key`` (or refresh that place) and take the lease if due.

        The waiter (``key``, ``seq``, ``owner``) is registered, or its place kept for
        another ``ttl`` seconds. The lease is granted when nobody holds it (or the
        holder's lease expired) and no live waiter has a lower ``(seq, owner)``; the
        waiter row is then removed and the fencing token grows by one. Otherwise None:
        call again (after :meth:`wait_for_lease`) within ``ttl`` to keep the place.
        """

    async def renew_lease(self, lease: Lease, *, ttl: float) -> Lease | None:
        """Extend a held lease to now + ``ttl``; None if it was lost (expired and re-claimed)."""

    async def release_lease(self, lease: Lease) -> bool:
        """Give the lease back and wake the waiters; False if it was no longer held."""

    async def abandon_wait(self, key: str, *, owner: str, seq: int) -> None:
        """Leave the queue of ``key`` (a cancelled request) and wake the others."""

    async def get_lease(self, key: str) -> Lease | None:
        """The current holder of ``key`` (an expired one included), or None if free."""

    async def first_waiter(self, key: str) -> int | None:
        """The lowest ``seq`` of the live waiters of ``key`` (None when nobody waits)."""

    async def place_in_line(self, key: str, *, owner: str, seq: int) -> int:
        """How many requests come before the waiter (``key``, ``seq``, ``owner``).

        The live holder of ``key``'s lease, if any, plus the live waiters with a lower
        ``(seq, owner)``, on every replica sharing the store.
        """

    async def join_queue(
        self, key: str, *, owner: str, seq: int, ttl: float, prefix: str, limit: int
    ) -> bool:
        """Register the waiter (``key``, ``seq``, ``owner``) unless the line is full: one
        atomic step on every replica (a lock per ``prefix``: one user's keys).

        Full means the live waiters of the keys starting with ``prefix`` that would
        still wait are ``limit`` or more; when ``key``'s session is free, the first of
        its waiters runs at once and does not count. A request that finds its session
        free with nobody waiting always joins (it runs at once), and so does a waiter
        registered already. False (nothing registered) when full.
        """

    async def wait_for_lease(self, key: str, seconds: float) -> bool:
        """Sleep until a lease of ``key`` is released or abandoned, or ``seconds`` pass.

        True when woken by a release. PostgreSQL wakes every replica (LISTEN/NOTIFY);
        SQLite wakes only this process, so callers poll with a short wait too
        (an expired lease wakes nobody anywhere).
        """

    # -- renders across replicas --------------------------------------------------------

    async def claim_renders(
        self, *, owner: str, lease: float, limit: int = 10
    ) -> list[RenderRecord]:
        """Claim up to ``limit`` undelivered renders nobody holds, oldest first.

        A render is free when unclaimed or when its claim is older than ``lease``
        seconds (its replica died). Each render goes to one claimer; concurrent
        claimers get disjoint sets (``FOR UPDATE SKIP LOCKED`` on PostgreSQL). The
        owner renews with :meth:`claim_delivery` and finishes with
        :meth:`mark_delivered`.
        """

    # -- inbound updates ----------------------------------------------------------------

    async def store_update(self, platform: str, update_id: int, payload: str) -> bool:
        """Store an update before answering it; False if it was stored already (a repeat)."""

    async def get_update(self, platform: str, update_id: int) -> InboundUpdate | None:
        """The stored update, or None."""

    async def claim_update(
        self, platform: str, update_id: int, *, owner: str, lease: float
    ) -> InboundUpdate | None:
        """Claim one stored update to handle it; None if done or held by another owner.

        Free means unclaimed or claimed more than ``lease`` seconds ago. A new claim
        counts one more attempt; the holder claiming again renews without counting.
        """

    async def claim_updates(
        self, platform: str, *, owner: str, lease: float, limit: int = 10
    ) -> list[InboundUpdate]:
        """Claim up to ``limit`` free, not-done updates of ``platform``, lowest id first."""

    async def set_update_stage(
        self, platform: str, update_id: int, *, owner: str, stage: str
    ) -> bool:
        """Record how far the holder got; False if ``owner`` does not hold the claim."""

    async def mark_update_done(self, platform: str, update_id: int, *, owner: str) -> bool:
        """The holder handled the update: never handed out again. False if not its claim."""

    async def release_update(self, platform: str, update_id: int, *, owner: str) -> bool:
        """The holder gives its claim back (for another replica). False if not its claim."""

    async def prune_updates(self, *, older_than: float) -> int:
        """Delete updates done more than ``older_than`` seconds ago; how many went."""

    # -- rate-limit counters ------------------------------------------------------------

    async def hit_counter(
        self, scope: str, key: str, *, window: float, limit: int | None = None, amount: int = 1
    ) -> CounterHit:
        """Add ``amount`` to the count of (``scope``, ``key``) in the current window.

        Windows are fixed, ``window`` seconds long and aligned to the Unix epoch (a
        day is a UTC day). With ``limit``, the hit is counted only if the count stays
        at or under it (check and add are one atomic step, across replicas too).
        """

    async def read_counter(self, scope: str, key: str, *, window: float) -> int:
        """The count of (``scope``, ``key``) in the current window (0 if none)."""

    async def prune_counters(self) -> int:
        """Delete counts of windows that have ended; how many went."""

    async def take_rate_slot(self, scope: str, *, limit: int, window: float) -> float:
        """Take one of ``limit`` events per sliding ``window`` seconds for ``scope``.

        0.0 when taken; otherwise how many seconds until a slot frees (nothing taken).
        No ``window``-long stretch of time ever holds more than ``limit`` taken
        slots, whichever replicas took them (e.g. a bot-wide messages-per-second
        budget shared by every replica).
        """

    async def claim_rate_slot(
        self, scope: str, *, limit: int, window: float, hold: float
    ) -> tuple[int, float] | float:
        """Take a slot like :meth:`take_rate_slot` and hold it until its call is answered.

        The slot is stamped ``hold`` seconds ahead, so no one takes it again while its
        call is on its way; :meth:`stamp_rate_slot` then stamps it with the time of the
        answer. Returns ``(slot, held_until)`` when taken, otherwise seconds to wait.
        """

    async def stamp_rate_slot(self, scope: str, slot: int, *, held_until: float) -> None:
        """Stamp a slot held by :meth:`claim_rate_slot` with now (its call was answered).

        Nothing happens if the hold ran out and someone took the slot since.
        """
