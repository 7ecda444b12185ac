"""The in-process session gate: one request per session, a few waiting, the rest refused."""

from __future__ import annotations

import asyncio

import pytest

from core.gate import LocalSessionGate, SessionBusy, SessionKey

KEY = SessionKey("test", "u1", "c1")


async def test_waiters_are_told_served_in_order_and_the_overflow_refused() -> None:
    gate = LocalSessionGate(max_waiting=1)
    order: list[str] = []
    told: list[str] = []
    release = asyncio.Event()

    async def request(name: str) -> None:
        async def on_wait() -> None:
            told.append(name)

        async with gate.hold(KEY, on_wait=on_wait):
            order.append(name)
            if name == "first":
                await release.wait()

    first = asyncio.create_task(request("first"))
    await asyncio.sleep(0)
    second = asyncio.create_task(request("second"))
    await asyncio.sleep(0)
    with pytest.raises(SessionBusy):
        await request("third")  # one running, one waiting: no room
    # Another session is not held up by this one.
    async with gate.hold(SessionKey("test", "u2", "c1")):
        pass
    assert gate.active_sessions == 1
    release.set()
    await asyncio.gather(first, second)
    assert order == ["first", "second"]
    assert told == ["second"]  # only the one that had to wait heard about it
    assert gate.active_sessions == 0


async def test_a_cancelled_waiter_gives_its_place_back() -> None:
    gate = LocalSessionGate(max_waiting=1)
    release = asyncio.Event()

    async def hold_until_released() -> None:
        async with gate.hold(KEY):
            await release.wait()

    holder = asyncio.create_task(hold_until_released())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(hold_until_released())
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    late = asyncio.create_task(hold_until_released())  # the freed place is usable again
    await asyncio.sleep(0)
    assert not late.done()
    release.set()
    await asyncio.gather(holder, late)
    assert gate.active_sessions == 0
