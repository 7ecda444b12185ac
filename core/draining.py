"""Stopping running work: a grace to finish, then cancel the rest.

The one home of that rule: the adapters' request tracker (:mod:`bots.tracker`) stops
its requests this way, and the stored-update inbox (:mod:`core.inbox`) its updates,
so a shutdown treats both alike. What the cancelled work tells its user, or hands
back, is each caller's own (their tasks handle :class:`asyncio.CancelledError`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

__all__ = ["drain"]


async def drain(tasks: Iterable[asyncio.Future[Any]], grace: float) -> set[asyncio.Future[Any]]:
    """Give ``tasks`` ``grace`` seconds to end, then cancel the rest and wait for them.

    Returns the tasks that had to be cancelled (empty when all ended in time).
    """
    running = {task for task in tasks if not task.done()}
    if not running:
        return set()
    _, pending = await asyncio.wait(running, timeout=grace)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return pending
