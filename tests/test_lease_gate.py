"""The store-backed session gate: two gates on one database are two replicas.

On PostgreSQL (the deployment it is chosen for) and on SQLite (two processes on one
file): one request per session at a time, in the platform's order; a cancelled
waiter gives its place up; a replica killed while holding a session loses it once
its lease expires, and the next request runs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from core.gate import OnWait, SessionBusy, SessionKey
from core.lease_gate import QueueFull, StoreSessionGate
from simulator.server import Simulator
from storage import make_store
from tests.fakes.collecting import Said
from tests.stores import backend, raw_rows, server, target

__all__ = ["backend", "server", "target"]  # fixtures used here

ROOT = Path(__file__).resolve().parent.parent
KEY = SessionKey("telegram", "u1", "chat1")


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll the database (another process's state: no event to wait on) for 30 s at most."""
    async with asyncio.timeout(30):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)


async def _waiters(target: Path | str, prefix: str = "") -> int:
    """The waiters in the database (of the keys starting with ``prefix``)."""
    sql = f"SELECT count(*) FROM session_waiters WHERE key LIKE '{prefix}%'"
    rows = await raw_rows(target, sql)
    return int(rows[0][0])  # type: ignore[call-overload]


async def test_two_replicas_run_a_sessions_requests_one_at_a_time_in_order(
    target: Path | str,
) -> None:
    async with make_store(target) as sa, make_store(target) as sb:
        gates = (
            StoreSessionGate(sa, replica="a", poll=0.2, max_waiting=10),
            StoreSessionGate(sb, replica="b", poll=0.2, max_waiting=10),
        )
        entered, release = asyncio.Event(), asyncio.Event()

        async def first() -> None:
            async with gates[0].hold(KEY, 100):
                entered.set()
                await release.wait()

        holder = asyncio.create_task(first())
        await asyncio.wait_for(entered.wait(), 30)
        starts: list[int] = []
        running = 0

        async def request(gate: StoreSessionGate, seq: int) -> None:
            nonlocal running
            async with gate.hold(KEY, seq):
                running += 1
                assert running == 1, "two requests of one session ran at once"
                starts.append(seq)
                await asyncio.sleep(0.02)
                running -= 1

        arrival = [105, 101, 104, 102, 103]  # the replicas see them out of order
        tasks = [asyncio.create_task(request(gates[i % 2], s)) for i, s in enumerate(arrival)]

        async def all_queued() -> bool:
            return await _waiters(target) == len(arrival)

        await _until(all_queued)
        release.set()
        await asyncio.wait_for(asyncio.gather(holder, *tasks), 60)
        assert starts == sorted(arrival)
        assert await _waiters(target) == 0


async def test_an_earlier_message_arriving_a_moment_later_still_goes_first(
    target: Path | str,
) -> None:
    """Message 11 reaches replica b and finds the session free; message 10 reaches
    replica a a moment later: 10 runs first, 11 is told it waits, then runs."""
    async with make_store(target) as sa, make_store(target) as sb:
        a = StoreSessionGate(sa, replica="a", poll=0.2, settle=0.5)
        b = StoreSessionGate(sb, replica="b", poll=0.2, settle=0.5)
        order: list[int] = []
        told: list[int] = []

        async def request(gate: StoreSessionGate, seq: int) -> None:
            async def on_wait() -> None:
                told.append(seq)

            async with gate.hold(KEY, seq, on_wait=on_wait):
                order.append(seq)
                await asyncio.sleep(0.05)

        later = asyncio.create_task(request(b, 11))
        await _until(lambda: _waiters_or_lease(sb))
        await asyncio.wait_for(asyncio.gather(later, request(a, 10)), 30)
        assert order == [10, 11]
        assert told == [11]


async def _waiters_or_lease(store: Any) -> bool:
    return await store.get_lease(str(KEY)) is not None


async def test_other_sessions_do_not_wait(target: Path | str) -> None:
    async with make_store(target) as sa, make_store(target) as sb:
        a, b = StoreSessionGate(sa, replica="a"), StoreSessionGate(sb, replica="b")
        async with a.hold(KEY, 1):
            other = SessionKey("telegram", "u2", "chat1")
            async with asyncio.timeout(10), b.hold(other, 1):
                lease = await sb.get_lease(str(other))
                assert lease is not None and lease.owner.startswith("b/")


async def test_a_cancelled_waiter_gives_its_place_up(target: Path | str) -> None:
    async with make_store(target) as sa, make_store(target) as sb:
        a = StoreSessionGate(sa, replica="a", ttl=60, poll=0.2)
        b = StoreSessionGate(sb, replica="b", ttl=60, poll=0.2)
        done = asyncio.Event()
        ran: list[int] = []

        async def run(gate: StoreSessionGate, seq: int) -> None:
            async with gate.hold(KEY, seq):
                ran.append(seq)
                done.set()

        async with a.hold(KEY, 1):
            doomed = asyncio.create_task(run(b, 2))
            later = asyncio.create_task(run(a, 3))

            async def queued() -> bool:
                return await _waiters(target) == 2

            await _until(queued)
            doomed.cancel()
            with pytest.raises(asyncio.CancelledError):
                await doomed
        # without giving its place up, seq 2 would block seq 3 for its 60 s ttl
        await asyncio.wait_for(later, 15)
        assert ran == [3]


async def test_busy_session_tells_the_caller_once_and_refuses_past_max_waiting(
    target: Path | str,
) -> None:
    async with make_store(target) as store:
        gate = StoreSessionGate(store, replica="a", poll=0.1, max_waiting=1)
        told: list[str] = []

        async def on_wait() -> None:
            told.append("wait")

        async with gate.hold(KEY, 1):
            waiter = asyncio.create_task(_enter(gate, 2, on_wait))

            async def queued() -> bool:
                return await _waiters(target) == 1

            await _until(queued)
            with pytest.raises(SessionBusy):
                async with gate.hold(KEY, 3):
                    pytest.fail("a third request got in")
        await asyncio.wait_for(waiter, 15)
        assert told == ["wait"]


@pytest.mark.parametrize("held", [True, False], ids=["session-busy", "session-free"])
async def test_joins_at_the_same_instant_on_two_replicas_admit_exactly_the_queue_limit(
    target: Path | str, held: bool
) -> None:
    """Twelve requests of one user join at once through two stores (two replicas' pools)."""
    limit, prefix, key = 3, "telegram:u1:", str(KEY)
    async with make_store(target) as sa, make_store(target) as sb:
        if held:  # a request of the session runs: every newcomer waits
            assert await sa.try_acquire_lease(key, owner="runner", seq=0, ttl=60) is not None

        async def join(n: int) -> bool:
            store = sa if n % 2 else sb
            return await store.join_queue(
                key, owner=f"r{n % 2}/{n}", seq=n + 1, ttl=60, prefix=prefix, limit=limit
            )

        admitted = await asyncio.gather(*(join(n) for n in range(12)))
        # a free session: the first to join runs at once, `limit` more wait
        assert sum(admitted) == (limit if held else limit + 1)
        assert await _waiters(target, prefix) == sum(admitted)
        # a joined waiter keeps its place (asking again is no new place)
        first = admitted.index(True)
        assert await join(first)
        assert await _waiters(target, prefix) == sum(admitted)
        # another user's line is their own
        assert await sb.join_queue(
            "telegram:u2:chat1", owner="x", seq=1, ttl=60, prefix="telegram:u2:", limit=limit
        )


async def test_gates_on_two_replicas_refuse_past_the_users_queue_limit_together(
    target: Path | str,
) -> None:
    async with make_store(target) as sa, make_store(target) as sb:
        gates = [
            StoreSessionGate(store, replica=name, poll=0.1, max_waiting=10, queue_limit=2)
            for store, name in ((sa, "a"), (sb, "b"))
        ]
        async with gates[0].hold(KEY, 1):
            waiting = [asyncio.create_task(_enter(gates[n % 2], n + 2, _nothing)) for n in range(6)]

            async def refused_rest() -> bool:
                return sum(t.done() for t in waiting) == 4 and await _waiters(target) == 2

            await _until(refused_rest)
            refused = [t for t in waiting if t.done()]
            assert all(isinstance(t.exception(), QueueFull) for t in refused)
            assert all(t.exception().limit == 2 for t in refused)  # type: ignore[union-attr]
        await asyncio.wait_for(asyncio.gather(*(t for t in waiting if not t.done())), 30)


async def test_a_waiter_sees_its_place_counted_across_replicas_as_it_moves(
    target: Path | str,
) -> None:
    async with make_store(target) as sa, make_store(target) as sb:
        a = StoreSessionGate(sa, replica="a", poll=0.1, max_waiting=10)
        b = StoreSessionGate(sb, replica="b", poll=0.1, max_waiting=10)
        places: dict[int, list[int]] = {2: [], 3: []}
        release = {2: asyncio.Event(), 3: asyncio.Event()}

        async def run(gate: StoreSessionGate, seq: int) -> None:
            async def on_place(ahead: int) -> None:
                places[seq].append(ahead)

            async with gate.hold(KEY, seq, on_place=on_place):
                await release[seq].wait()

        async with a.hold(KEY, 1):
            second = asyncio.create_task(run(b, 2))
            await _until(lambda: asyncio.sleep(0, bool(places[2])))
            third = asyncio.create_task(run(a, 3))
            await _until(lambda: asyncio.sleep(0, bool(places[3])))
            # the other user's request and another chat of this user are not in this line
            other = SessionKey("telegram", "u1", "chat2")
            assert await sb.place_in_line(str(other), owner="x", seq=9) == 0
            assert await _waiters(target, "telegram:u1:") == 2
            assert await _waiters(target, "telegram:u2:") == 0
            assert await _waiters(target, "telegram:u1:chat1") == 2
        # the first finished: the second runs, the third moves up
        await _until(lambda: asyncio.sleep(0, places[3][-1:] == [1]))
        release[2].set()
        await asyncio.wait_for(second, 15)
        release[3].set()
        await asyncio.wait_for(third, 15)
        assert places == {2: [1], 3: [2, 1]}
        assert await _waiters(target, "telegram:u1:") == 0


async def _nothing() -> None:
    pass


async def _enter(gate: StoreSessionGate, seq: int, on_wait: OnWait) -> None:
    async with gate.hold(KEY, seq, on_wait=on_wait):
        pass


_DOOMED = """
import asyncio, sys
from core.gate import SessionKey
from core.lease_gate import StoreSessionGate
from simulator.server import Simulator
from storage import make_store
from tests.fakes.collecting import Said

async def main():
    async with make_store(sys.argv[1]) as store:
        gate = StoreSessionGate(store, replica="doomed", ttl=float(sys.argv[2]))
        async with gate.hold(SessionKey("telegram", "u1", "chat1"), 1):
            print("holding", flush=True)
            await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_killed_replicas_lease_expires_and_the_next_request_runs(
    target: Path | str,
) -> None:
    ttl = 3.0
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _DOOMED, str(target), str(ttl),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.strip() == b"holding"
        async with make_store(target) as store:
            gate = StoreSessionGate(store, replica="survivor", poll=0.2)
            held = await store.get_lease(str(KEY))
            assert held is not None and held.owner.startswith("doomed/")
            entered = asyncio.Event()

            async def next_request() -> None:
                async with gate.hold(KEY, 2):
                    entered.set()

            task = asyncio.create_task(next_request())
            await asyncio.sleep(ttl * 1.2)  # the holder is alive and renewing: it waits
            assert not entered.is_set()
            os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()
            killed_at = time.monotonic()
            await asyncio.wait_for(task, 30)
            assert time.monotonic() - killed_at <= ttl + 10  # within the lease, plus slack
            after = await store.get_lease(str(KEY))
            assert after is None  # released by the survivor
            rows = await raw_rows(
                target, "SELECT token FROM session_leases WHERE key = 'telegram:u1:chat1'"
            )
            assert rows == [(2,)]  # the survivor's claim was the second
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_open_core_picks_the_lease_gate_for_postgres_only(
    target: Path | str, backend: str
) -> None:
    from core.app import open_core
    from core.config import Settings
    from core.gate import LocalSessionGate

    settings = Settings(_env_file=None, NEMO_BOT_DB=str(target))  # type: ignore[call-arg,arg-type]
    async with open_core(settings) as service:
        expected = StoreSessionGate if backend == "postgres" else LocalSessionGate
        assert type(service.gate) is expected


async def test_two_bot_replicas_on_postgres_serve_a_sessions_messages_in_order(
    pg_url: str, sim: Simulator
) -> None:
    """Two services from open_core on one PostgreSQL database, as two replicas would be."""
    from core.app import open_core
    from core.config import Settings
    from core.i18n import t
    from core.types import IncomingMessage
    from tests.fakes.collecting import CollectingAdapter, CollectingReplier

    spans: dict[int, list[float]] = {}

    class Stamped(CollectingReplier):
        """Stamps the request's own replies (not the notices of its place) with the time."""

        seq = 0

        def record(self, item: Said) -> None:
            if item.kind != "notice":
                spans.setdefault(self.seq, []).append(time.monotonic())
            super().record(item)

    def replier(seq: int) -> Stamped:
        r = Stamped()
        r.seq = seq
        return r

    def message(seq: int) -> IncomingMessage:
        text = f"generate a 10-second clip of lighthouse number {seq}"
        return IncomingMessage(platform="telegram", user_id="u1", chat_id="c1", text=text, seq=seq)

    settings = Settings(_env_file=None, NEMO_API_BASE=sim.base_url, NEMO_BOT_DB=pg_url)  # type: ignore[call-arg,arg-type]
    async with open_core(settings) as a, open_core(settings) as b:
        for service in (a, b):
            service.register_adapter(CollectingAdapter())
            await service.start()
        repliers = {seq: replier(seq) for seq in (1, 2, 3)}
        first = asyncio.create_task(a.handle(message(1), repliers[1]))

        async def held() -> bool:
            rows = await raw_rows(
                pg_url, "SELECT count(*) FROM session_leases WHERE owner IS NOT NULL"
            )
            return rows == [(1,)]

        await _until(held)
        later = [
            asyncio.create_task(a.handle(message(3), repliers[3])),  # the replicas get them
            asyncio.create_task(b.handle(message(2), repliers[2])),  # out of order
        ]

        async def queued_both() -> bool:
            return await _waiters(pg_url) == 2

        await _until(queued_both)
        await asyncio.wait_for(asyncio.gather(first, *later), 90)

    for seq in (1, 2, 3):
        assert spans.get(seq), f"request {seq} got no answer"
    # each waited and was told its place, counted across both replicas (3 saw 1 or 2
    # ahead of it, as 2 reached the database after or before it)
    assert repliers[2].said[0].text == t("queue_one", "en")
    assert repliers[3].said[0].text in (t("queue_one", "en"), t("queue_many", "en", ahead=2))
    # one at a time, in update order: each one's replies all come before the next one's
    assert max(spans[1]) < min(spans[2]) and max(spans[2]) < min(spans[3])
