"""A crowd on Telegram: K people ask at the same moment; how long until each has the answer?

Black box: ``nemo-bot telegram`` runs as a subprocess with its production settings,
against the fake Bot API of ``tests/fakes/telegram_server.py`` (in this process)
enforcing Telegram's flood limits (one call a second per chat with bursts of 3,
20 a minute per group, and in the capped runs 30 a second overall, answering 429
beyond them) and the NemoVideo simulator in another subprocess, whose every chat
stream lasts about 10 s (8 s of heartbeats, then text chunks 0.5 s apart) and is
timed there (:mod:`bench.crowd_sim`; the processes share ``time.monotonic``).

Crowd runs: K private chats (K = 300, 1000) send a prompt at once. Measured: full
replies (the final message, with its buttons, reached the fake), the final-text
lag (when the fake received the whole reply minus when the backend wrote its last
chunk) p50/p99, when the last backend stream opened after the prompts were sent,
the 429 answers, and the bot's peak RSS. Twice: with the fake enforcing 30/s and
the bot's default ``TELEGRAM_OVERALL_RATE``, and with no overall cap anywhere
(``TELEGRAM_OVERALL_RATE=0``).

Floor: the same K first messages' backend calls (token, session, stream) made by a bare
script with the bot's client, no chat platform and no store: when the last stream opens
there is what this machine and the simulator allow before the bot adds anything.

Throughput: flood limits off, backend instant, 20 messages in flight: messages/s and
CPU ms per message of the bot process, for ``/credits`` and a streamed prompt, against
a bare python-telegram-bot bot making the same backend calls (:mod:`bench.bare_bot`).

``BENCH_BEFORE=<git ref>`` also runs the bot of that commit (exported to a temporary
directory) in every scenario, side by side: the before/after table in README.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    ROOT,
    Result,
    fast_sim,
    percentile,
    raise_nofile,
    run_main,
    simulator_module,
)
from core.client import NemoClient
from tests.fakes.telegram_server import FakeTelegram, SentMessage

NAME = "crowd"
TOKEN = "123:CROWD"
#: ``BENCH_CROWD_SIZES=50,100`` for a quick look; the targets are set for 300 and 1000.
SIZES = tuple(int(k) for k in os.environ.get("BENCH_CROWD_SIZES", "300,1000").split(","))
STREAM_SIM = fast_sim(slow_step_seconds=8.0, chunk_delay=0.5, heartbeat_interval=0.5)
PROMPT = "make a 10-second clip of a lighthouse at dusk"
THROUGHPUT_MESSAGES = 300
IN_FLIGHT = 20
_uids = itertools.count(1_000_000)


class TimingTelegram(FakeTelegram):
    """The fake Bot API, noting per chat when the first message and the final reply arrived.

    The final reply is the first message (or edit) of the chat that carries buttons other
    than a running request's lone Cancel (``SentMessage.result_markup``): a slow request's
    "Working on it…" note carries that one.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.first: dict[int, float] = {}
        self.final: dict[int, float] = {}
        self._waiters: dict[tuple[int, bool], asyncio.Event] = {}
        self.all_final = asyncio.Event()
        self.expected = 0

    def _note(self, chat_id: int, sent: SentMessage) -> None:
        now = time.monotonic()
        self.first.setdefault(chat_id, now)
        self._wake(chat_id, False)
        if sent.result_markup:
            self.final.setdefault(chat_id, now)
            self._wake(chat_id, True)
            if len(self.final) >= self.expected:
                self.all_final.set()

    def _wake(self, chat_id: int, final: bool) -> None:
        event = self._waiters.pop((chat_id, final), None)
        if event is not None:
            event.set()

    async def until(self, chat_id: int, *, final: bool) -> None:
        """Wait for the chat's first message (or its final reply)."""
        if chat_id in (self.final if final else self.first):
            return
        await self._waiters.setdefault((chat_id, final), asyncio.Event()).wait()

    def _store(self, chat_id: int, params: dict[str, Any], sent: SentMessage) -> dict[str, Any]:
        result = super()._store(chat_id, params, sent)
        self._note(chat_id, sent)
        return result

    async def _m_editMessageText(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        result = await super()._m_editMessageText(params, files)
        key = (int(params["chat_id"]), int(params["message_id"]))
        self._note(key[0], self.messages[key])
        return result

    def forget(self) -> None:
        """Drop what was recorded (between throughput phases): memory stays flat."""
        self.calls.clear()
        self.messages.clear()
        self.drafts.clear()
        self.accepted.clear()


# -- processes --------------------------------------------------------------------------


def crowd_sim(config: dict[str, Any]) -> contextlib.AbstractAsyncContextManager[str]:
    """The timing simulator in a subprocess; yields its base URL."""
    return simulator_module("bench.crowd_sim", config)


async def _stop(proc: asyncio.subprocess.Process, grace: float = 20.0) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def _proc_stats(pid: int) -> tuple[float, float]:
    """(CPU seconds so far, peak RSS in MB) of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    peak = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    return cpu, peak


@contextlib.asynccontextmanager
async def bot_process(
    tree: Path | None, tg: FakeTelegram, nemo_api: str, workdir: Path, **env: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``nemo-bot telegram`` from source ``tree`` (None: the bare PTB baseline bot)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("NEMO_", "TELEGRAM_"))}
    environ.update(
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE=tg.base_url,
        NEMO_API_BASE=nemo_api,
        NEMO_BOT_DB=str(workdir / f"bot-{next(_uids)}.db"),
        NEMO_LOG_LEVEL="WARNING",
        **env,
    )
    if tree is None:
        args = ["-m", "bench.bare_bot", tg.base_url, nemo_api]
        environ["PYTHONPATH"] = str(ROOT)
    else:
        args = ["-c", "import sys; from bots.cli import main; sys.exit(main())", "telegram"]
        environ["PYTHONPATH"] = str(tree)
    log = (workdir / "bot.log").open("ab")
    polls = len(tg.calls_of("getUpdates", ok_only=False))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args, cwd=workdir, env=environ, stdout=log, stderr=log
    )
    try:
        await tg.wait_for(
            lambda: len(tg.calls_of("getUpdates", ok_only=False)) > polls + 1, within=60
        )
        yield proc
    finally:
        await _stop(proc)
        log.close()


# -- crowd ---------------------------------------------------------------------------------


async def crowd(tree: Path, k: int, *, capped: bool, sim: str, workdir: Path) -> dict[str, Any]:
    """K private chats prompt at once; the figures of one run."""
    tg = TimingTelegram(TOKEN, flood_limit=True, overall_rate=30 if capped else None)
    async with tg:
        rate = {} if capped else {"TELEGRAM_OVERALL_RATE": "0"}
        async with httpx.AsyncClient() as http:
            await http.delete(f"{sim}/_bench/streams")
            async with bot_process(tree, tg, sim, workdir, **rate) as proc:
                users = [next(_uids) for _ in range(k)]
                tg.expected = k
                started = time.monotonic()
                for uid in users:
                    tg.private_text(uid, f"{PROMPT} (crowd-{uid})")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(tg.all_final.wait(), 10 + 1.5 * k / 30 + 25)
                elapsed = time.monotonic() - started
                _, peak = _proc_stats(proc.pid)
            streams = (await http.get(f"{sim}/_bench/streams")).json()
    lags, opened = [], []
    for uid in users:
        times = streams.get(str(uid))
        if times is None:
            continue
        opened.append(times[0] - started)
        if uid in tg.final:
            lags.append(tg.final[uid] - times[1])
    return {
        "k": k,
        "capped": capped,
        "full_replies": sum(1 for uid in users if uid in tg.final),
        "streams_opened": len(opened),
        "lag_p50": percentile(lags, 50),
        "lag_p99": percentile(lags, 99),
        "last_stream_opened": max(opened, default=float("nan")),
        "rejected_429": tg.flood_hits,
        "rejected_by_limit": dict(tg.hits),
        "peak_rss_mb": peak,
        "seconds": elapsed,
        "drafts": len(tg.drafts),
        "message_calls": len(tg.accepted),
    }


async def floor(k: int, *, sim: str) -> float:
    """When the last of K streams opened with nothing but the backend calls of a first message.

    The same client as the bot's, in this process, minting a token, creating a session
    and opening the chat stream for K new users at once: no chat platform, no store. It is
    what this machine and the simulator allow before the bot adds anything.
    """
    async with httpx.AsyncClient() as http:
        await http.delete(f"{sim}/_bench/streams")
    uids = [next(_uids) for _ in range(k)]
    async with NemoClient(base_url=sim) as client:
        started = time.monotonic()

        async def first_message(uid: int) -> None:
            token = (await client.anonymous_token(f"floor-{uid}")).token
            session = (await client.create_session(token)).session_id
            async for _ in client.chat(token, session, f"{PROMPT} (crowd-{uid})"):
                pass

        await asyncio.gather(*(first_message(uid) for uid in uids))
    async with httpx.AsyncClient() as http:
        streams = (await http.get(f"{sim}/_bench/streams")).json()
    return max(streams[str(uid)][0] - started for uid in uids)


# -- throughput ------------------------------------------------------------------------------


async def throughput(tree: Path | None, kind: str, *, sim: str, workdir: Path) -> dict[str, float]:
    """Messages/s and CPU ms per message with ``IN_FLIGHT`` requests outstanding."""
    tg = TimingTelegram(TOKEN)
    async with tg:
        env = {"TELEGRAM_OVERALL_RATE": "0"}
        async with bot_process(tree, tg, sim, workdir, **env) as proc:
            final = tree is not None and kind == "prompt"  # the bare bot sends no buttons

            async def one() -> None:
                uid = next(_uids)
                if kind == "credits":
                    tg.push_message(chat=tg.private_chat(uid), user=tg.user(uid), text="/credits")
                else:
                    tg.private_text(uid, PROMPT)
                await tg.until(uid, final=final)

            async def worker(count: int) -> None:
                for _ in range(count):
                    await one()

            await asyncio.gather(*(worker(1) for _ in range(IN_FLIGHT)))  # warm-up
            tg.forget()
            cpu_before, _ = _proc_stats(proc.pid)
            started = time.monotonic()
            per = THROUGHPUT_MESSAGES // IN_FLIGHT
            await asyncio.gather(*(worker(per) for _ in range(IN_FLIGHT)))
            elapsed = time.monotonic() - started
            cpu_after, _ = _proc_stats(proc.pid)
    count = per * IN_FLIGHT
    cpu_ms = 1000 * (cpu_after - cpu_before) / count
    return {"msgs_per_s": count / elapsed, "cpu_ms_per_msg": cpu_ms}


# -- the whole benchmark -----------------------------------------------------------------------


def _export(ref: str, into: Path) -> Path:
    """The source tree of git ``ref``, exported under ``into``."""
    tree = into / f"src-{ref[:12]}"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "archive", ref], cwd=ROOT, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def _fmt(value: float, unit: str = "s") -> str:
    return "n/a" if value != value else f"{value:.1f} {unit}".strip()


async def run() -> Result:
    result = Result(NAME)
    raise_nofile()
    before_ref = os.environ.get("BENCH_BEFORE")
    with tempfile.TemporaryDirectory(prefix="nemo-crowd-") as tmp:
        workdir = Path(tmp)
        trees: dict[str, Path] = {"after": ROOT}
        if before_ref:
            trees = {"before": _export(before_ref, workdir), "after": ROOT}
        result.data["before_ref"] = before_ref
        async with crowd_sim(STREAM_SIM) as sim:
            for k in SIZES:
                opened = await floor(k, sim=sim)
                result.data.setdefault("floor", []).append({"k": k, "last_stream_opened": opened})
                result.add(
                    f"floor: K={k}: last stream opened, backend calls alone (same client, "
                    "no chat platform, no store)",
                    _fmt(opened),
                    "",
                    None,
                )
            for k, capped in itertools.product(SIZES, (True, False)):
                for label, tree in trees.items():
                    figures = await crowd(tree, k, capped=capped, sim=sim, workdir=workdir)
                    result.data.setdefault("crowd", []).append({"version": label, **figures})
                    _crowd_rows(result, label, figures)
        async with crowd_sim(fast_sim()) as sim:
            for kind in ("credits", "prompt"):
                bare = await throughput(None, kind, sim=sim, workdir=workdir)
                rows = result.data.setdefault("throughput", [])
                rows.append({"bot": "bare", "kind": kind, **bare})
                for label, tree in trees.items():
                    mine = await throughput(tree, kind, sim=sim, workdir=workdir)
                    ratio = mine["msgs_per_s"] / bare["msgs_per_s"]
                    result.data["throughput"].append(
                        {"bot": label, "kind": kind, **mine, "ratio": ratio}
                    )
                    judged = label == "after"
                    result.add(
                        f"{label}: {kind}, {IN_FLIGHT} in flight: msgs/s (CPU ms/msg) vs bare PTB",
                        f"{mine['msgs_per_s']:.0f} ({mine['cpu_ms_per_msg']:.1f}) vs "
                        f"{bare['msgs_per_s']:.0f} ({bare['cpu_ms_per_msg']:.1f}): {ratio:.2f}x",
                        ">= 0.7x" if judged else "",
                        (ratio >= 0.7) if judged else None,
                    )
    return result


def _crowd_rows(result: Result, label: str, f: dict[str, Any]) -> None:
    k, capped = f["k"], f["capped"]
    judged = label == "after"
    cap = "30/s cap" if capped else "no overall cap"
    head = f"{label}: K={k}, {cap}"
    full = f["full_replies"] == k
    if capped:
        p99_target, p50_target = 1.2 * k / 30 + 2, 1.2 * k / 60 + 2
    else:
        p99_target, p50_target = 2.0, float("inf")
    lag_ok = full and f["lag_p99"] <= p99_target and f["lag_p50"] <= p50_target
    lag_target = f"p99 <= {p99_target:.0f} s" + (f", p50 <= {p50_target:.0f} s" if capped else "")
    open_ok = f["streams_opened"] == k and f["last_stream_opened"] <= 2.0

    def row(metric: str, value: str, target: str, ok: bool) -> None:
        judge = judged and bool(target)
        result.add(f"{head}: {metric}", value, target if judge else "", ok if judge else None)

    row("full replies", f"{f['full_replies']}/{k}", f"{k}/{k}", full)
    lag = f"p50 {_fmt(f['lag_p50'])}, p99 {_fmt(f['lag_p99'])}"
    row("final-text lag", lag, lag_target, lag_ok)
    opened = f"{_fmt(f['last_stream_opened'])} ({f['streams_opened']}/{k} opened)"
    row("last backend stream opened after", opened, "<= 2 s", open_ok)
    row("429 answers", str(f["rejected_429"]), "0" if capped else "", f["rejected_429"] == 0)
    rss_ok = k < 1000 or f["peak_rss_mb"] <= 200
    row("peak RSS", f"{f['peak_rss_mb']:.0f} MB", "<= 200 MB" if k >= 1000 else "", rss_ok)


def main() -> None:
    run_main(NAME, run)


if __name__ == "__main__":
    main()


__all__: Sequence[str] = ("main", "run")
