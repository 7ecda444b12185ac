"""The replica-coordination primitives, on SQLite and on a real PostgreSQL server.

Per-session leases with waiting requests in sequence order, render claims that hand
each render to one replica, stored inbound updates unique by (platform, update_id),
and rate-limit counters that survive a restart. "Replicas" are separate store
objects on one database (separate connections / pools).
"""

from __future__ import annotations

import asyncio
import json
import time
from contextvars import ContextVar
from pathlib import Path

import pytest

from storage import Lease, PostgresStore, RenderRecord, SQLiteStore, make_store
from tests.stores import FakeClock, backend, clock, raw_rows, server, store, target

__all__ = ["backend", "clock", "server", "store", "target"]  # fixtures used here

AnyStore = SQLiteStore | PostgresStore
HOUR = 3600.0


def render(rid: str) -> RenderRecord:
    return RenderRecord(
        render_id=rid, session_id="s1", platform="telegram", user_id="u1", chat_id="c1"
    )


# -- leases ----------------------------------------------------------------------------


async def test_lease_goes_to_one_holder_and_its_token_grows(
    store: AnyStore, clock: FakeClock
) -> None:
    first = await store.try_acquire_lease("k", owner="a", seq=1, ttl=30)
    assert first == Lease(key="k", owner="a", token=1, expires_at=1030.0)
    assert await store.try_acquire_lease("k", owner="b", seq=2, ttl=30) is None
    assert await store.get_lease("k") == first

    assert await store.release_lease(first)
    assert not await store.release_lease(first)  # twice: no longer held
    assert await store.get_lease("k") is None
    second = await store.try_acquire_lease("k", owner="b", seq=2, ttl=30)
    assert second is not None and second.token == 2 and second.owner == "b"
    other = await store.try_acquire_lease("other", owner="a", seq=1, ttl=30)
    assert other is not None and other.token == 1  # keys are independent


async def test_renew_extends_and_an_expired_lease_goes_to_the_next_waiter(
    store: AnyStore,
    clock: FakeClock,
) -> None:
    held = await store.try_acquire_lease("k", owner="a", seq=1, ttl=30)
    assert held is not None
    clock.advance(20)
    assert await store.try_acquire_lease("k", owner="b", seq=2, ttl=30) is None
    renewed = await store.renew_lease(held, ttl=30)
    assert renewed is not None and renewed.expires_at == 1050.0 and renewed.token == 1

    clock.advance(29)
    assert await store.try_acquire_lease("k", owner="b", seq=2, ttl=30) is None  # still held
    clock.advance(2)  # the holder died: nobody renewed
    taken = await store.try_acquire_lease("k", owner="b", seq=2, ttl=30)
    assert taken is not None and taken.token == 2
    assert await store.renew_lease(renewed, ttl=30) is None  # the old holder lost it
    assert not await store.release_lease(renewed)  # and cannot free the new holder's lease
    assert await store.get_lease("k") == taken


async def test_waiters_are_served_in_sequence_order(store: AnyStore, clock: FakeClock) -> None:
    holder = await store.try_acquire_lease("k", owner="h", seq=1, ttl=30)
    assert holder is not None
    for seq, owner in ((7, "x"), (5, "y"), (6, "z")):  # arrive out of order
        assert await store.try_acquire_lease("k", owner=owner, seq=seq, ttl=30) is None
    await store.release_lease(holder)

    served = []
    pending = {7: "x", 5: "y", 6: "z"}
    while pending:
        for seq, owner in sorted(pending.items(), reverse=True):  # later ones ask first
            got = await store.try_acquire_lease("k", owner=owner, seq=seq, ttl=30)
            if got is not None:
                served.append(seq)
                del pending[seq]
                await store.release_lease(got)
                break
        else:
            pytest.fail(f"nobody could take the free lease; waiting: {pending}")
    assert served == [5, 6, 7]


async def test_first_waiter_is_the_lowest_live_one(store: AnyStore, clock: FakeClock) -> None:
    assert await store.first_waiter("k") is None
    holder = await store.try_acquire_lease("k", owner="h", seq=9, ttl=30)
    assert holder is not None
    assert await store.first_waiter("k") is None  # the holder no longer waits
    assert await store.try_acquire_lease("k", owner="x", seq=12, ttl=5) is None
    assert await store.try_acquire_lease("k", owner="y", seq=10, ttl=30) is None
    assert await store.first_waiter("k") == 10
    await store.abandon_wait("k", owner="y", seq=10)
    assert await store.first_waiter("k") == 12
    clock.advance(6)  # x stopped refreshing its place
    assert await store.first_waiter("k") is None


async def test_a_dead_waiter_stops_blocking_and_abandon_leaves_the_queue(
    store: AnyStore,
    clock: FakeClock,
) -> None:
    assert await store.try_acquire_lease("k", owner="h", seq=1, ttl=10) is not None
    assert await store.try_acquire_lease("k", owner="dead", seq=2, ttl=10) is None
    assert await store.try_acquire_lease("k", owner="gone", seq=3, ttl=100) is None
    assert await store.try_acquire_lease("k", owner="live", seq=4, ttl=100) is None
    clock.advance(11)  # the holder and seq 2 stopped refreshing
    await store.abandon_wait("k", owner="gone", seq=3)  # a cancelled request
    got = await store.try_acquire_lease("k", owner="live", seq=4, ttl=100)
    assert got is not None and got.owner == "live"


async def test_two_replicas_run_one_request_at_a_time_in_order(
    target: Path | str, clock: FakeClock
) -> None:
    """Two stores on one database; each request waits (woken or polling) for its turn."""
    async with make_store(target) as a, make_store(target) as b:
        log: list[tuple[str, int]] = []
        running = 0

        async def request(replica: AnyStore, seq: int) -> None:
            nonlocal running
            owner = f"{id(replica)}/{seq}"
            while (
                lease := await replica.try_acquire_lease("s", owner=owner, seq=seq, ttl=30)
            ) is None:
                await replica.wait_for_lease("s", 0.2)
            running += 1
            assert running == 1
            log.append(("start", seq))
            await asyncio.sleep(0.01)
            log.append(("end", seq))
            running -= 1
            assert await replica.release_lease(lease)

        # seq 1 runs; the rest queue in the order the platform numbered them ...
        seqs = list(range(1, 11))
        first = await b.try_acquire_lease("s", owner=f"{id(b)}/1", seq=1, ttl=30)
        assert first is not None
        for seq in seqs[1:]:
            replica = (a, b)[seq % 2]
            owner = f"{id(replica)}/{seq}"
            assert await replica.try_acquire_lease("s", owner=owner, seq=seq, ttl=30) is None
        # ... then seq 1 ends and they all race for the lease
        await b.release_lease(first)
        await asyncio.wait_for(
            asyncio.gather(*(request((a, b)[s % 2], s) for s in seqs[1:])), timeout=60
        )
        assert [seq for what, seq in log if what == "start"] == seqs[1:]


async def test_a_release_wakes_a_waiter_promptly(target: Path | str, backend: str) -> None:
    async with make_store(target) as a, make_store(target) as b:
        held = await a.try_acquire_lease("k", owner="a", seq=1, ttl=30)
        assert held is not None
        # on PostgreSQL the other replica is woken by NOTIFY; on SQLite only the same
        # process is, so the waiter there waits on the releasing store itself
        waiter = b if backend == "postgres" else a
        woken = asyncio.create_task(waiter.wait_for_lease("k", 30))
        await asyncio.sleep(0.2)  # the waiter is listening
        await a.release_lease(held)
        assert await asyncio.wait_for(woken, 10) is True
        assert await waiter.wait_for_lease("k", 0.05) is False  # nothing else: times out


# -- renders ---------------------------------------------------------------------------


async def test_claim_renders_hands_each_render_to_one_replica(
    target: Path | str, clock: FakeClock
) -> None:
    async with make_store(target, clock=clock) as a, make_store(target, clock=clock) as b:
        for i in range(40):
            await a.add_render(render(f"r{i:02d}"))
            clock.advance(1)
        batches = await asyncio.gather(
            *((a, b)[i % 2].claim_renders(owner=f"o{i}", lease=60, limit=3) for i in range(20))
        )
        claimed = [r.render_id for batch in batches for r in batch]
        assert sorted(claimed) == [f"r{i:02d}" for i in range(40)]  # every one, exactly once
        assert len(set(claimed)) == 40
        owners = {r.render_id: r.claimed_by for batch in batches for r in batch}
        stored = await a.get_render("r05")
        assert stored is not None and stored.claimed_by == owners["r05"]
        assert await b.claim_renders(owner="late", lease=60) == []  # nothing free


async def test_a_dead_replicas_render_is_taken_over_after_its_lease_and_delivered_once(
    store: AnyStore,
    clock: FakeClock,
) -> None:
    for rid in ("old", "new"):
        await store.add_render(render(rid))
        clock.advance(1)
    got = await store.claim_renders(owner="dead", lease=60, limit=1)
    assert [r.render_id for r in got] == ["old"]  # oldest first
    clock.advance(30)
    assert [r.render_id for r in await store.claim_renders(owner="live", lease=60)] == ["new"]
    assert await store.claim_delivery("new", owner="live", lease=60)  # renewed by its owner
    clock.advance(31)  # "dead" never renewed: its claim is 61 s old
    taken = await store.claim_renders(owner="live", lease=60)
    assert [r.render_id for r in taken] == ["old"]
    await store.mark_delivered("old", owner="dead")  # the dead owner's late write is refused
    old = await store.get_render("old")
    assert old is not None and old.delivered_at is None
    await store.mark_delivered("old", owner="live")
    clock.advance(1000)
    assert [r.render_id for r in await store.claim_renders(owner="x", lease=60)] == ["new"]
    assert await store.claim_renders(owner="y", lease=60) == []  # delivered: never again


# -- inbound updates ---------------------------------------------------------------------


async def test_updates_are_stored_once_and_claimed_by_one(
    store: AnyStore, clock: FakeClock
) -> None:
    body = json.dumps({"update_id": 10, "message": {"text": "hi"}})
    assert await store.store_update("telegram", 10, body)
    assert not await store.store_update("telegram", 10, "a re-delivery")  # ignored
    assert await store.store_update("discord", 10, "{}")  # another platform's id space
    got = await store.get_update("telegram", 10)
    assert got is not None and got.payload == body and got.attempts == 0

    first = await store.claim_update("telegram", 10, owner="a", lease=30)
    assert first is not None and first.attempts == 1 and first.claimed_by == "a"
    assert await store.claim_update("telegram", 10, owner="b", lease=30) is None
    again = await store.claim_update("telegram", 10, owner="a", lease=30)  # renew
    assert again is not None and again.attempts == 1
    assert not await store.set_update_stage("telegram", 10, owner="b", stage="sent")
    assert await store.set_update_stage("telegram", 10, owner="a", stage="sent")
    assert not await store.mark_update_done("telegram", 10, owner="b")
    assert await store.mark_update_done("telegram", 10, owner="a")
    assert await store.claim_update("telegram", 10, owner="a", lease=30) is None  # done
    done = await store.get_update("telegram", 10)
    assert done is not None and done.done_at == 1000.0 and done.stage == "sent"
    assert await store.get_update("telegram", 11) is None


async def test_a_dead_replicas_update_is_taken_over_with_its_stage(
    store: AnyStore,
    clock: FakeClock,
) -> None:
    for uid in (3, 1, 2):
        await store.store_update("telegram", uid, f"u{uid}")
    batch = await store.claim_updates("telegram", owner="dead", lease=30, limit=2)
    assert [u.update_id for u in batch] == [1, 2]  # lowest id first
    await store.set_update_stage("telegram", 1, owner="dead", stage="streaming")
    assert [u.update_id for u in await store.claim_updates("telegram", owner="b", lease=30)] == [3]
    assert await store.release_update("telegram", 3, owner="b")
    assert not await store.release_update("telegram", 3, owner="b")
    clock.advance(31)
    taken = await store.claim_updates("telegram", owner="b", lease=30)
    assert [(u.update_id, u.attempts, u.stage) for u in taken] == [
        (1, 2, "streaming"),  # started before: the new handler can tell
        (2, 2, None),
        (3, 2, None),
    ]
    assert not await store.mark_update_done("telegram", 1, owner="dead")  # lost its claim


async def test_prune_updates_drops_only_old_done_ones(store: AnyStore, clock: FakeClock) -> None:
    for uid in (1, 2, 3):
        await store.store_update("telegram", uid, "{}")
        await store.claim_update("telegram", uid, owner="a", lease=30)
    await store.mark_update_done("telegram", 1, owner="a")
    clock.advance(100)
    await store.mark_update_done("telegram", 2, owner="a")
    assert await store.prune_updates(older_than=50) == 1
    assert await store.get_update("telegram", 1) is None
    assert await store.get_update("telegram", 2) is not None
    assert await store.get_update("telegram", 3) is not None  # never done: kept


async def test_concurrent_claimers_split_the_pending_updates(
    target: Path | str, clock: FakeClock
) -> None:
    async with make_store(target, clock=clock) as a, make_store(target, clock=clock) as b:
        for uid in range(30):
            await a.store_update("telegram", 1000 + uid, "{}")
        batches = await asyncio.gather(
            *(
                (a, b)[i % 2].claim_updates("telegram", owner=f"o{i}", lease=30, limit=4)
                for i in range(10)
            )
        )
        ids = [u.update_id for batch in batches for u in batch]
        assert sorted(ids) == list(range(1000, 1030)) and len(set(ids)) == 30


# -- counters ----------------------------------------------------------------------------


async def test_counter_counts_within_a_window_and_refuses_over_the_limit(
    store: AnyStore,
    clock: FakeClock,
) -> None:
    clock.now = 7200.0 + 100  # 100 s into an hour
    hits = [
        await store.hit_counter("requests", "telegram:u1", window=HOUR, limit=3) for _ in range(4)
    ]
    assert [(h.allowed, h.count) for h in hits] == [(True, 1), (True, 2), (True, 3), (False, 3)]
    assert hits[0].window_start == 7200.0 and hits[0].resets_at == 10800.0
    assert await store.read_counter("requests", "telegram:u1", window=HOUR) == 3
    assert await store.read_counter("requests", "telegram:u2", window=HOUR) == 0
    other = await store.hit_counter("exports", "telegram:u1", window=HOUR, limit=3)
    assert other.count == 1  # scopes are independent
    big = await store.hit_counter("requests", "telegram:u2", window=HOUR, limit=3, amount=4)
    assert not big.allowed and big.count == 0
    free = await store.hit_counter("requests", "telegram:u2", window=HOUR, amount=10)
    assert free.allowed and free.count == 10  # no limit

    clock.now = 10800.0  # the next hour
    assert await store.read_counter("requests", "telegram:u1", window=HOUR) == 0
    fresh = await store.hit_counter("requests", "telegram:u1", window=HOUR, limit=3)
    assert fresh.allowed and fresh.count == 1
    assert await store.prune_counters() == 3  # the last hour's three rows
    assert await store.read_counter("requests", "telegram:u1", window=HOUR) == 1


async def test_counters_survive_a_restart_and_hold_the_limit_across_replicas(
    target: Path | str, clock: FakeClock
) -> None:
    async with make_store(target, clock=clock) as a, make_store(target, clock=clock) as b:
        hits = await asyncio.gather(
            *((a, b)[i % 2].hit_counter("exports", "u", window=86400, limit=5) for i in range(40))
        )
        assert sum(h.allowed for h in hits) == 5
    async with make_store(target, clock=clock) as again:
        assert await again.read_counter("exports", "u", window=86400) == 5
        assert not (await again.hit_counter("exports", "u", window=86400, limit=5)).allowed
    rows = await raw_rows(target, "SELECT count FROM counters")
    assert rows == [(5,)]


async def test_a_lost_notification_connection_is_replaced(pg_url: str) -> None:
    async with make_store(pg_url) as a, make_store(pg_url) as b:
        killed = await raw_rows(
            pg_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
        )
        assert killed and all(ok for (ok,) in killed)  # both stores' listeners are gone
        held = await a.try_acquire_lease("k", owner="a", seq=1, ttl=30)
        assert held is not None
        woken = asyncio.create_task(b.wait_for_lease("k", 30))  # listens again first
        await asyncio.sleep(0.5)
        await a.release_lease(held)
        assert await asyncio.wait_for(woken, 10) is True


# -- shared sliding-window rate limit -----------------------------------------------------


async def test_rate_slots_hold_a_sliding_window_not_a_fixed_one(
    store: AnyStore, clock: FakeClock
) -> None:
    clock.now = 10.9  # late in a second: a fixed window would reset at 11.0
    assert [await store.take_rate_slot("tg", limit=3, window=1.0) for _ in range(3)] == [0.0] * 3
    wait = await store.take_rate_slot("tg", limit=3, window=1.0)
    assert wait == pytest.approx(1.0)  # the oldest of the three frees at 11.9
    clock.now = 11.1  # a new fixed second, but the sliding window still holds three
    assert await store.take_rate_slot("tg", limit=3, window=1.0) == pytest.approx(0.8)
    assert await store.take_rate_slot("other", limit=3, window=1.0) == 0.0  # scopes apart
    clock.now = 11.9  # all three were taken at 10.9: three more fit
    assert [await store.take_rate_slot("tg", limit=3, window=1.0) for _ in range(3)] == [0.0] * 3
    assert await store.take_rate_slot("tg", limit=3, window=1.0) == pytest.approx(1.0)
    clock.now = 11.9 + 1.0
    assert await store.take_rate_slot("tg", limit=4, window=1.0) == 0.0  # a raised limit


async def test_a_claimed_rate_slot_counts_from_its_answer_not_its_taking(
    store: AnyStore, clock: FakeClock
) -> None:
    clock.now = 100.0
    first = await store.claim_rate_slot("tg", limit=2, window=1.0, hold=30.0)
    second = await store.claim_rate_slot("tg", limit=2, window=1.0, hold=30.0)
    assert isinstance(first, tuple) and isinstance(second, tuple)
    assert first[0] != second[0] and first[1] == second[1] == 130.0
    clock.now = 105.0  # long after taking, but neither call has its answer: both held
    assert await store.claim_rate_slot("tg", limit=2, window=1.0, hold=30.0) == pytest.approx(26.0)
    await store.stamp_rate_slot("tg", first[0], held_until=first[1])  # answered at 105.0
    clock.now = 105.6  # a window after taking, but not after the answer
    assert await store.claim_rate_slot("tg", limit=2, window=1.0, hold=30.0) == pytest.approx(0.4)
    clock.now = 106.0
    again = await store.claim_rate_slot("tg", limit=2, window=1.0, hold=30.0)
    assert again == (first[0], 136.0)
    # A stale stamp (its hold ran out and the slot was taken since) changes nothing.
    await store.stamp_rate_slot("tg", first[0], held_until=first[1])
    assert await store.claim_rate_slot("tg", limit=2, window=1.0, hold=30.0) == pytest.approx(25.0)


async def test_replicas_sharing_a_rate_budget_never_exceed_it_in_any_window(
    target: Path | str,
) -> None:
    """Real time: three stores take 30/s slots as fast as they can; check every window.

    The times checked are the ones each store read from its clock when it took the
    slot (a context variable per sending task), not when the answer came back.
    """
    limit, window = 30, 1.0
    read: ContextVar[float] = ContextVar("read")

    def clock() -> float:
        now = time.time()
        read.set(now)
        return now

    async with (
        make_store(target, clock=clock) as a,
        make_store(target, clock=clock) as b,
        make_store(target, clock=clock) as c,
    ):
        stamps: list[float] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2.5

        async def sender(replica: AnyStore) -> None:
            while loop.time() < deadline:
                wait = await replica.take_rate_slot("telegram:overall", limit=limit, window=window)
                if wait == 0.0:
                    stamps.append(read.get())
                else:
                    await asyncio.sleep(min(wait, 0.05))

        await asyncio.gather(*(sender(r) for r in (a, b, c, a, b, c)))
    stamps.sort()
    assert len(stamps) >= limit * 2  # it did let them through at the budget ...
    for i in range(len(stamps) - limit):  # ... and no window-long stretch held more
        assert stamps[i + limit] - stamps[i] >= window, (i, stamps[i : i + limit + 1])
