"""Keeping a claim alive while its work runs: one background beat for every lease.

Session leases (:mod:`core.lease_gate`), stored updates (:mod:`core.inbox`) and
delivery claims (:mod:`core.delivery`) all expire unless renewed, so that another
replica takes the work over when its holder dies. Each says how to renew once (its
``beat``); :func:`kept_alive` runs that beat in the background while the work runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = ["kept_alive"]


@contextlib.asynccontextmanager
async def kept_alive(beat: Callable[[], Awaitable[bool]], every: float) -> AsyncIterator[None]:
    """Call ``beat`` every ``every`` s while the block runs, until it returns False.

    ``beat`` renews the claim once and handles its own failures: True to keep beating
    (renewed, or a blip worth another try), False once the claim is lost for good.
    """

    async def beating() -> None:
        while True:
            await asyncio.sleep(every)
            if not await beat():
                return

    beater = asyncio.create_task(beating())
    try:
        yield
    finally:
        beater.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beater
