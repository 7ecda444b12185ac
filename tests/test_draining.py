"""core.draining.drain: the one "grace, then cancel" rule of a shutdown."""

from __future__ import annotations

import asyncio

from core.draining import drain


async def test_work_that_ends_within_the_grace_ends_and_the_rest_is_cancelled() -> None:
    finished: list[str] = []
    stopped: list[str] = []

    async def work(name: str, ends: asyncio.Event) -> None:
        try:
            await ends.wait()
            finished.append(name)
        except asyncio.CancelledError:
            stopped.append(name)
            raise

    quick_done, never = asyncio.Event(), asyncio.Event()
    quick = asyncio.create_task(work("quick", quick_done))
    slow = asyncio.create_task(work("slow", never))
    asyncio.get_running_loop().call_later(0.05, quick_done.set)
    # The grace is long enough for "quick" on any machine; "slow" never ends by itself.
    cancelled = await drain([quick, slow], grace=2.0)
    assert cancelled == {slow}
    assert finished == ["quick"] and stopped == ["slow"]
    assert quick.done() and not quick.cancelled() and slow.cancelled()


async def test_nothing_running_returns_at_once() -> None:
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    assert await drain([done], grace=60.0) == set()
    assert await drain([], grace=60.0) == set()
