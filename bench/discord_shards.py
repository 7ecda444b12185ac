"""Discord shards: memory and event throughput of ``nemo-bot discord`` processes.

A fake gateway (``tests/fakes/discord_server.py``, in this process) holds 300 guilds.
Each subject gets 20,000 MESSAGE_CREATE events of ordinary chatter (not addressed to
the bot, 40-400 characters, from 2,000 authors, spread over every guild), then one
"@bot help" per process whose answer marks the end. Subjects, in alternating order
each round:

* ``defaults``: one process, every guild, discord.py's default caches (a 1,000-message
  cache, the member cache its intents allow): the contrast;
* ``production``: one process, every guild, the bot as it ships (no message or member
  cache, no chunking);
* ``2 shards``: two production processes, shards 0 and 1 of 2, on one SQLite file.

The bot runs as a real process (``bench/discord_child.py``: ``nemo-bot discord``, with
the default caches put back for the contrast). Measured per process: resident memory
(``VmRSS``) once ready and after the chatter, and the chatter's events/s (first event
sent to the last help answer posted). Medians over the rounds. The fake sends every
event from this one process, so on a small machine it, not the bot, may set the pace of
the two-shard subject: two processes on two cores cannot beat one by much.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import ROOT, Result, median, ratios, run_main
from tests.fakes.discord_server import FakeDiscord, FakeGuild, Recorded, shard_of
from tests.fakes.procs import bot_env

NAME = "discord"
GUILDS = 300
EVENTS = 20_000
AUTHORS = 2_000
ROUNDS = 3
TOKEN = "bench.discord.token"
SUBJECTS: dict[str, tuple[str, list[tuple[list[int], int]]]] = {
    "defaults": ("defaults", [([0], 1)]),
    "production": ("production", [([0], 1)]),
    "2 shards": ("production", [([0], 2), ([1], 2)]),
}


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _post_to(channel_id: str) -> Callable[[Recorded], bool]:
    path = f"/channels/{channel_id}/messages"
    return lambda r: r.method == "POST" and path in r.path


class _Child:
    """One ``python -m bench.discord_child`` process, its log drained as it comes."""

    def __init__(self, mode: str, env: dict[str, str], cwd: Path) -> None:
        self.mode, self.env, self.cwd = mode, env, cwd
        self.log = ""
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.discord_child", self.mode,
            env=self.env, cwd=self.cwd,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.log += line.decode(errors="replace")

    async def ready(self, within: float = 120) -> None:
        deadline = time.monotonic() + within
        while "all platforms up" not in self.log:
            if self.proc is None or self.proc.returncode is not None:
                raise RuntimeError(f"the bot stopped:\n{self.log[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the bot did not start:\n{self.log[-2000:]}")
            await asyncio.sleep(0.1)

    @property
    def rss_mb(self) -> float:
        assert self.proc is not None
        return _rss_mb(self.proc.pid)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader


async def _subject(
    fake: FakeDiscord,
    guilds: list[FakeGuild],
    authors: list[dict[str, Any]],
    name: str,
    workdir: Path,
) -> dict[str, Any]:
    mode, layout = SUBJECTS[name]
    db = workdir / f"{name.replace(' ', '-')}-{time.monotonic_ns()}.db"
    children = []
    for ids, count in layout:
        env = bot_env(
            DISCORD_BOT_TOKEN=TOKEN,
            DISCORD_API_BASE=fake.api_base,
            DISCORD_GATEWAY_URL=fake.gateway_url,
            NEMO_API_BASE="http://127.0.0.1:9",  # never called: help needs no backend
            NEMO_BOT_DB=db,
            DISCORD_SHARD_COUNT=count,
            DISCORD_SHARD_IDS=",".join(map(str, ids)),
            NEMO_LOG_LEVEL="INFO",
            PYTHONPATH=ROOT,
        )
        children.append(_Child(mode, env, workdir))
    try:
        for child in children:
            await child.start()
        await asyncio.gather(*(child.ready() for child in children))
        ready_rss = [child.rss_mb for child in children]
        rng = random.Random(7)
        mention = f"<@{fake.bot_user['id']}>"
        started = time.monotonic()
        for n in range(EVENTS):
            words = " ".join("chatter" for _ in range(rng.randrange(5, 50)))
            await fake.user_message(
                words, user=authors[n % len(authors)], mention_bot=False, guild=guilds[n % GUILDS]
            )
            if n % 2000 == 0:
                fake.messages.clear()  # the fake keeps no history it does not need
        # One help request per process, in a guild of its shard: its answer comes after
        # every event sent to that process before it.
        last = []
        for ids, count in layout:
            guild = next(g for g in guilds if shard_of(g.id, count) in ids)
            await fake.user_message(f"{mention} help", guild=guild)
            last.append(guild.channel_id)
        for channel in last:
            await fake.wait_for(_post_to(channel), within=600)
        seconds = time.monotonic() - started
        after_rss = [child.rss_mb for child in children]
    finally:
        await asyncio.gather(*(child.stop() for child in children))
        fake.requests.clear()
        fake.messages.clear()
        fake.deliveries.clear()
    return {
        "ready_rss_mb": ready_rss,
        "after_rss_mb": after_rss,
        "seconds": seconds,
        "events_per_s": EVENTS / seconds,
        "guilds_per_process": [
            sum(1 for g in guilds if shard_of(g.id, count) in ids) for ids, count in layout
        ],
    }


async def run() -> Result:
    """Every subject once per round, in alternating order; medians per subject."""
    result = Result(NAME)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in SUBJECTS}
    async with FakeDiscord() as fake:
        guilds = [fake.add_guild(shard=(n % 2, 2)) for n in range(GUILDS)]
        authors = [fake.add_user(f"user{n}") for n in range(AUTHORS)]
        with tempfile.TemporaryDirectory(prefix="nemo-bench-discord-") as tmp:
            order = list(SUBJECTS)
            for round_no in range(ROUNDS):
                for name in order if round_no % 2 == 0 else reversed(order):
                    runs[name].append(await _subject(fake, guilds, authors, name, Path(tmp)))
                    print(f"  round {round_no + 1} {name}: {runs[name][-1]}", flush=True)
    result.data = {"guilds": GUILDS, "events": EVENTS, "authors": AUTHORS, "runs": runs}

    def med(name: str, key: str, index: int = 0) -> float:
        return median([r[key][index] for r in runs[name]])

    def eps(name: str) -> float:
        return median([r["events_per_s"] for r in runs[name]])

    for name, label in (
        ("defaults", "1 process, discord.py default caches (contrast)"),
        ("production", "1 process, production caches"),
    ):
        result.add(
            f"{label}: RSS ready / after {EVENTS:,} events",
            f"{med(name, 'ready_rss_mb'):.0f} / {med(name, 'after_rss_mb'):.0f} MB",
        )
    result.add(
        f"2 shard processes: RSS each after {EVENTS:,} events (guilds each)",
        f"{med('2 shards', 'after_rss_mb', 0):.0f} ({runs['2 shards'][0]['guilds_per_process'][0]})"
        f" + {med('2 shards', 'after_rss_mb', 1):.0f} MB"
        f" ({runs['2 shards'][0]['guilds_per_process'][1]})",
    )
    growth_default = med("defaults", "after_rss_mb") - med("defaults", "ready_rss_mb")
    growth_production = med("production", "after_rss_mb") - med("production", "ready_rss_mb")
    result.add(
        "RSS growth over the chatter: production vs default caches",
        f"{growth_production:.1f} vs {growth_default:.1f} MB",
        "production <= defaults",
        growth_production <= growth_default,
    )
    result.add(
        "events/s: defaults; production; 2 shards (both processes)",
        f"{eps('defaults'):,.0f}; {eps('production'):,.0f}; {eps('2 shards'):,.0f}",
    )
    speed = ratios(
        [r["events_per_s"] for r in runs["production"]],
        [r["events_per_s"] for r in runs["defaults"]],
    )
    result.add("events/s production / defaults (median of rounds)", f"{median(speed):.2f}x")
    return result


def main() -> None:
    """Run the benchmark, print its table, write ``bench/results/discord.json``."""
    run_main(NAME, run)


if __name__ == "__main__":
    main()
