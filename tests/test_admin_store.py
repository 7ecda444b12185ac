"""The store's admin side (activity, daily counts, delivery delays, broadcasts) on SQLite
and on a real PostgreSQL server. Each test runs once per back-end (``tests/stores.py``).
"""

from __future__ import annotations

from pathlib import Path

from storage import PostgresStore, RenderRecord, SQLiteStore
from tests.stores import FakeClock, backend, clock, raw_rows, server, store, target

__all__ = ["backend", "clock", "server", "store", "target"]  # fixtures used here

AnyStore = SQLiteStore | PostgresStore
DAY = 86_400.0


async def test_contacts_count_people_seen_since_a_time_once_each(
    store: AnyStore, clock: FakeClock
) -> None:
    clock.now = 10 * DAY
    await store.note_contact("telegram", "1", "1")
    await store.note_contact("discord", "1", None)  # another person: another platform
    clock.now = 15 * DAY
    await store.note_contact("telegram", "2", None)
    await store.note_contact("telegram", "2", None)  # seen twice, counted once
    await store.note_contact("telegram", "2", "2")
    clock.now = 16 * DAY
    await store.note_contact("telegram", "1", None)  # a group message keeps the DM chat
    assert await store.count_contacts(since=16 * DAY) == 1
    assert await store.count_contacts(since=15 * DAY) == 2
    assert await store.count_contacts(since=0) == 3
    assert await store.broadcast_targets("telegram", after=None, limit=10) == [
        ("1", "1"),
        ("2", "2"),
    ]
    assert await store.broadcast_targets("telegram", after="1", limit=10) == [("2", "2")]
    assert await store.broadcast_targets("discord", after=None, limit=10) == [("1", "1")]


async def test_daily_counts_add_up_per_key_over_the_days_asked(
    store: AnyStore, clock: FakeClock
) -> None:
    clock.now = 3 * DAY + 5  # 1970-01-04
    await store.add_daily("request", "ok")
    await store.add_daily("request", "ok", 2)
    await store.add_daily("error", "2001")
    clock.now = 4 * DAY + 5  # 1970-01-05
    await store.add_daily("request", "ok")
    await store.add_daily("request", "error")
    assert await store.read_daily("request", since_day="1970-01-04") == {"ok": 4, "error": 1}
    assert await store.read_daily("request", since_day="1970-01-05") == {"ok": 1, "error": 1}
    assert await store.read_daily("error", since_day="1970-01-01") == {"2001": 1}
    assert await store.read_daily("nothing", since_day="1970-01-01") == {}


async def test_render_outcomes_and_delivery_delays(store: AnyStore, clock: FakeClock) -> None:
    for rid, status, delay in (
        ("a", "completed", 2.0),
        ("b", "completed", 6.0),
        ("c", "failed", 0),
    ):
        clock.now = 1000.0
        await store.add_render(
            RenderRecord(
                render_id=rid, session_id="s", platform="telegram", user_id="u", chat_id="c"
            )
        )
        await store.update_render(rid, status=status)
        clock.now = 1000.0 + delay
        assert await store.claim_delivery(rid, owner="me")
        await store.mark_delivered(rid, owner="me")
    clock.now = 1000.0
    await store.add_render(
        RenderRecord(render_id="d", session_id="s", platform="telegram", user_id="u", chat_id="c")
    )
    assert await store.render_outcomes(since=0) == {"completed": 2, "failed": 1, "pending": 1}
    assert await store.render_outcomes(since=2000) == {}
    assert sorted(await store.delivery_delays(since=0)) == [2.0, 6.0]  # failed ones aside
    assert await store.delivery_delays(since=1003) == [6.0]


async def test_a_broadcast_keeps_its_place_until_finished(
    store: AnyStore, clock: FakeClock
) -> None:
    first = await store.start_broadcast("telegram", "hello all", admin_chat="9", admin_user="9")
    second = await store.start_broadcast("telegram", "again", admin_chat="9", admin_user="9")
    assert second.broadcast_id > first.broadcast_id and first.cursor is None
    await store.advance_broadcast(first.broadcast_id, cursor="17")
    await store.advance_broadcast(first.broadcast_id, cursor="42")
    pending = await store.unfinished_broadcasts()
    assert [(b.broadcast_id, b.cursor, b.text) for b in pending] == [
        (first.broadcast_id, "42", "hello all"),
        (second.broadcast_id, None, "again"),
    ]
    clock.advance()
    done = await store.finish_broadcast(first.broadcast_id)
    assert done is not None and (done.cursor, done.finished_at) == ("42", clock.now)
    assert [b.broadcast_id for b in await store.unfinished_broadcasts()] == [second.broadcast_id]
    assert await store.finish_broadcast(999_999) is None


async def test_a_broadcast_claims_each_recipient_once_and_counts_outcomes_at_the_end(
    store: AnyStore, target: Path | str
) -> None:
    for user in ("a", "b", "c", "d", "e"):
        await store.note_contact("telegram", user, f"chat-{user}")
    record = await store.start_broadcast("telegram", "hi", admin_chat="9", admin_user="9")
    bid = record.broadcast_id
    assert await store.claim_broadcast_recipient(bid, "a")
    assert not await store.claim_broadcast_recipient(bid, "a")  # never a second send
    for user in ("b", "c", "d"):
        assert await store.claim_broadcast_recipient(bid, user)
    # another broadcast has its own recipients
    other = await store.start_broadcast("telegram", "other", admin_chat="9", admin_user="9")
    assert await store.claim_broadcast_recipient(other.broadcast_id, "a")

    targets = await store.broadcast_targets("telegram", after=None, limit=10, unclaimed_in=bid)
    assert targets == [("e", "chat-e")]
    assert len(await store.broadcast_targets("telegram", after=None, limit=10)) == 5

    await store.settle_broadcast_recipient(bid, "a", "sent")
    await store.settle_broadcast_recipient(bid, "b", "failed")
    await store.settle_broadcast_recipient(bid, "c", "unconfirmed")
    await store.settle_broadcast_recipient(bid, "a", "failed")  # settled once: stays sent
    # "d" stays claimed: a crash came between its send and its outcome
    await store.advance_broadcast(bid, cursor="d")
    # counts a run from before recipient claims left in the row (an upgrade mid-broadcast)
    await raw_rows(target, f"UPDATE broadcasts SET sent = 2 WHERE broadcast_id = {bid}")
    done = await store.finish_broadcast(bid)
    assert done is not None
    assert (done.sent, done.failed, done.unconfirmed) == (3, 1, 2)
    assert await store.finish_broadcast(bid) is None  # finished once: reported once
    pending = await store.unfinished_broadcasts()
    assert [b.broadcast_id for b in pending] == [other.broadcast_id]
    assert not await store.claim_broadcast_recipient(other.broadcast_id, "a")  # untouched
    await store.finish_broadcast(other.broadcast_id)
    assert not await store.claim_broadcast_recipient(other.broadcast_id, "b")  # done: no claims
