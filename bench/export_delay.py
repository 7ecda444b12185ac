"""Export delivery delay: render completed -> link shown, adaptive polling vs the docs' 30 s.

50 renders per policy, of random length 5-90 s, **time-compressed 10x**: the simulator
renders in 0.5-9 s and both poll policies are divided by 10 as well (the adaptive
:class:`core.polling.PollPolicy` defaults, and the docs' flat 30 s poll as 3 s). Polling
decisions are scale-free (intervals from elapsed time and progress), so the scaled-back
figures (x10) are what real renders would see; HTTP and event-loop overheads get
multiplied by 10 too, so the scaled-back delays slightly overstate the real ones.

Both policies run side by side on one in-process simulator, each through its own
full core (service + SQLite store + client), 50 users each: a generation, then
"export". Completion time is the simulator's (job submitted + its render seconds);
"link shown" is when the core calls the replier's ``send_video``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from bench.common import Result, median, percentile, run_main
from core.app import open_core
from core.config import Settings
from core.polling import PollPolicy
from core.service import ConversationService
from core.types import Action, IncomingMessage
from simulator.server import SimConfig, Simulator

NAME = "export"
RENDERS = 50
SCALE = 10.0  # time compression
RANGE = (5.0, 90.0)  # real render seconds
DOCS_POLL = 30.0
_TIME_FIELDS = ("min_interval", "max_interval", "first_delay", "deadline", "max_backoff")


def scaled(policy: PollPolicy, factor: float) -> PollPolicy:
    """``policy`` with every time field divided by ``factor``."""
    names = {f.name for f in dataclasses.fields(policy)}
    changes = {n: getattr(policy, n) / factor for n in _TIME_FIELDS if n in names}
    return dataclasses.replace(policy, **changes)


class _Stream:
    async def append(self, text: str) -> None:
        pass

    async def finish(self, actions: Sequence[Action] = ()) -> None:
        pass


class DeliveryReplier:
    """Records when the video (link) is shown; never downloads it."""

    def __init__(self) -> None:
        self.shown_at: float | None = None
        self.url: str | None = None
        self.texts: list[str] = []

    async def send_text(self, text: str, *, actions: Sequence[Action] = (), private: bool = False):
        self.texts.append(text)

    def stream(self, running: Any = ()) -> _Stream:
        return _Stream()

    async def progress(self, text: str, percent: int | None = None) -> None:
        pass

    async def notice(self, text: str, *, actions: Any = ()) -> None:
        pass

    async def send_video(self, video: Any) -> None:
        self.shown_at = time.time()
        self.url = video.url

    async def working(self, kind: str = "typing") -> None:
        pass


async def _export_all(service: ConversationService, tag: str) -> list[DeliveryReplier]:
    repliers = [DeliveryReplier() for _ in range(RENDERS)]

    async def user(u: int) -> None:
        replier = repliers[u]
        for text in (f"make a 10-second clip of scene {u}", "export"):
            await service.handle(IncomingMessage(tag, str(u), str(u), text), replier)

    await asyncio.gather(*(user(u) for u in range(RENDERS)))
    await service.wait_idle()
    return repliers


async def run() -> Result:
    result = Result(NAME)
    lo, hi = RANGE[0] / SCALE, RANGE[1] / SCALE
    config = SimConfig(
        seed=7,
        chunk_delay=0.0,
        slow_step_seconds=0.0,
        render_seconds_range=(lo, hi),
        render_drafts=False,  # polling is measured here, not ffmpeg: one fixed clip
        max_recorded_requests=100_000,
    )
    policies = {
        "adaptive": scaled(PollPolicy(), SCALE),
        "docs 30 s": PollPolicy(
            min_interval=DOCS_POLL / SCALE,
            max_interval=DOCS_POLL / SCALE,
            first_delay=DOCS_POLL / SCALE,
            deadline=PollPolicy().deadline / SCALE,
        ),
    }
    figures: dict[str, dict[str, Any]] = {}
    async with Simulator(config) as sim, AsyncExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nemo-bench-")))
        services = {}
        for label, policy in policies.items():
            settings = Settings(  # type: ignore[call-arg]
                _env_file=None,
                NEMO_API_BASE=sim.base_url,
                NEMO_BOT_DB=tmp / f"{label.split()[0]}.db",
            )
            services[label] = await stack.enter_async_context(
                open_core(settings, poll_policy=policy)
            )
        wall = time.monotonic()
        done = await asyncio.gather(
            *(_export_all(svc, f"bench-{n}") for n, svc in enumerate(services.values()))
        )
        wall = time.monotonic() - wall
        jobs = sim.renders.jobs
        polls: dict[str, int] = {}
        for req in sim.requests:
            if req.endpoint == "render_status":
                rid = req.path.rsplit("/", 1)[-1]
                polls[rid] = polls.get(rid, 0) + 1
        for label, repliers in zip(policies, done, strict=True):
            delays, counts, rates, lengths = [], [], [], []
            for r in repliers:
                if r.shown_at is None or r.url is None:
                    continue
                job = next(j for j in jobs.values() if j.output_name and j.output_name in r.url)
                delays.append((r.shown_at - (job.created + job.seconds)) * SCALE)
                n = polls.get(job.render_id, 0)
                counts.append(n)
                lengths.append(job.seconds * SCALE)
                rates.append(n / (job.seconds * SCALE / 60))
            figures[label] = {
                "delivered": len(delays),
                "delay_s_p50": percentile(delays, 50),
                "delay_s_p95": percentile(delays, 95),
                "delay_s_max": max(delays, default=float("nan")),
                "compressed_delay_s_p50": percentile(delays, 50) / SCALE,
                "compressed_delay_s_p95": percentile(delays, 95) / SCALE,
                "polls_per_render_median": median(counts),
                "polls_per_render_mean": sum(counts) / len(counts) if counts else float("nan"),
                "polls_per_render_minute_max": max(rates, default=float("nan")),
                "render_s_median": median(lengths),
                "failures": sorted({t[:60] for r in repliers for t in r.texts if "fail" in t}),
            }
    result.data.update(
        renders_per_policy=RENDERS,
        time_compression=SCALE,
        real_render_range_s=RANGE,
        wall_s=wall,
        policies={k: dataclasses.asdict(v) for k, v in policies.items()},
        results=figures,
    )
    a, d = figures["adaptive"], figures["docs 30 s"]
    result.add(
        "delivered",
        f"{a['delivered']}/{RENDERS} adaptive, {d['delivered']}/{RENDERS} docs-30s",
        f"{RENDERS}/{RENDERS}",
        a["delivered"] == RENDERS and d["delivered"] == RENDERS,
    )
    result.add(
        "delay p50 adaptive (x10 scaled back)",
        f"{a['delay_s_p50']:.2f} s ({a['compressed_delay_s_p50'] * 1000:.0f} ms compressed)",
        "<= 3 s",
        a["delay_s_p50"] <= 3,
    )
    result.add("delay p95 adaptive", f"{a['delay_s_p95']:.2f} s")
    result.add(
        "polls per render adaptive (median; max per minute)",
        f"{a['polls_per_render_median']:.0f}; {a['polls_per_render_minute_max']:.0f}/min",
        "bounded",
        a["polls_per_render_minute_max"] <= 60 / PollPolicy().min_interval + 1,
    )
    result.add(
        "docs 30 s poll: delay p50 / p95; polls per render",
        f"{d['delay_s_p50']:.1f} / {d['delay_s_p95']:.1f} s; {d['polls_per_render_median']:.0f}",
    )
    return result


def main() -> None:
    run_main(NAME, run)


if __name__ == "__main__":
    main()
