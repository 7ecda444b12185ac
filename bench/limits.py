"""Fair limits: what checking ``NEMO_LIMIT_*`` costs a request, on the production SQLite store.

Subject: :meth:`core.limits.Limits.admit` with ``NEMO_LIMIT_REQUESTS_PER_HOUR`` and
``NEMO_LIMIT_EXPORTS_PER_DAY`` set (one atomic counter write per request, two for an
export) on a SQLite file opened as the bot opens it (:func:`storage.factory.make_store`).
Baseline: the same call with the limits unset (what every request paid before). Both
run the same mix (chat, chat, export, status...) for 16 users at once, in rounds that
alternate (order flipped every round); medians of the time per request are reported,
and the difference is the limits' cost. The limits are high enough never to refuse, so
every request is counted, as in production until a user reaches a limit.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from bench.common import Result, median, run_main
from core.config import Settings
from core.limits import Limits
from core.metrics import Metrics
from core.request import Request
from core.types import IncomingMessage, Intent
from storage.base import Store
from storage.factory import make_store
from tests.fakes.collecting import CollectingReplier

NAME = "limits"
USERS = 16
PER_USER = 40
ROUNDS = 7
MIX = (Intent.CHAT, Intent.CHAT, Intent.EXPORT, Intent.STATUS, Intent.UPLOAD, Intent.CREDITS)


def _limits(store: Store, *, on: bool) -> Limits:
    cap = 1_000_000 if on else None
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    settings = settings.model_copy(
        update={"limit_requests_per_hour": cap, "limit_exports_per_day": cap}
    )
    return Limits(settings=settings, store=store, metrics=Metrics())


async def _round(limits: Limits, tag: str) -> float:
    """Seconds per request for USERS users sending PER_USER requests each, at once."""
    replier = CollectingReplier()

    async def user(u: int) -> None:
        msg = IncomingMessage(platform="bench", user_id=f"{tag}{u}", chat_id=f"c{u}")
        req = Request.of(msg, replier)
        for i in range(PER_USER):
            if not await limits.admit(req, MIX[i % len(MIX)]):
                raise RuntimeError("a limit refused: the benchmark's limits are too low")

    started = time.perf_counter()
    await asyncio.gather(*(user(u) for u in range(USERS)))
    return (time.perf_counter() - started) / (USERS * PER_USER)


async def run() -> Result:
    result = Result(NAME)
    with tempfile.TemporaryDirectory() as tmp:
        async with make_store(Path(tmp) / "bench.db") as store:
            on, off = _limits(store, on=True), _limits(store, on=False)
            await _round(on, "warm")  # the table's pages and the connection warm
            with_limits: list[float] = []
            without: list[float] = []
            for r in range(ROUNDS):
                order = [(on, with_limits), (off, without)]
                for limits, into in order if r % 2 == 0 else reversed(order):
                    into.append(await _round(limits, f"r{r}"))
    subject, baseline = median(with_limits) * 1e6, median(without) * 1e6
    result.add("admit(), limits set: µs per request (median)", f"{subject:.0f} µs")
    result.add("admit(), limits unset: µs per request (median)", f"{baseline:.1f} µs")
    cost = subject - baseline
    result.add("the limits' cost per request (SQLite, 16 users at once)", f"{cost:.0f} µs")
    result.data = {"with_limits_s": with_limits, "without_s": without, "users": USERS}
    return result


def main() -> None:
    """Run and print the benchmark."""
    run_main(NAME, run)


if __name__ == "__main__":
    main()
