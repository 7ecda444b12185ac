"""Telegram: the adapter's messages/s vs a bare PTB echo bot; 200 chats under flood limits.

Throughput. Both bots run for real (python-telegram-bot, long polling) against the
same fake Bot API server (``tests/fakes/telegram_server.py``) in this process, one
after the other, alternating over rounds. A round queues ``MESSAGES`` text updates
from as many private chats and times them until every echo has been sent:

* subject: :class:`bots.telegram.TelegramBot` with an echo service (``handle`` sends
  the text back through the adapter's replier: routing, HTML escaping, splitting,
  per-chat pacing, a task per update). Its flood throttles are switched off here
  (pacing interval 0, ``TELEGRAM_OVERALL_RATE=0``) so the figure is the
  adapter's own cost, not Telegram's 30 messages/s;
* baseline: a bare PTB ``Application`` whose handler does
  ``update.message.reply_text(text)``, with ``concurrent_updates(True)`` so it does
  not get the unfair handicap of handling one update at a time.

Flood limits. 200 chats (180 private, 20 groups) each ask the real core (with the
NemoVideo simulator in a subprocess) for a clip at once; replies stream into edited
messages. The fake here enforces Telegram's limits on message-producing calls
(sendMessage, editMessageText, sendVideo): one per second per chat, 20 per minute per
group, 30 per second overall (sliding windows), answering 429 ``retry_after`` beyond
them. The adapter runs with its production settings. Target: zero 429 answers.
"""

from __future__ import annotations

import asyncio
import collections
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from telegram import Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes, filters
from telegram.ext import MessageHandler as PTBMessageHandler

from bench.common import Result, fast_sim, median, ratios, run_main, simulator_process
from bots.telegram import TelegramBot
from bots.telegram.budget import WindowBudget
from core.app import open_core
from core.config import Settings
from core.types import IncomingMessage, Replier
from tests.fakes.telegram_server import Call, FakeTelegram

NAME = "telegram"
TOKEN = "123:BENCH"
MESSAGES = 200
ROUNDS = 5
CHATS = 200
GROUPS = 20
_MESSAGE_METHODS = frozenset({"sendMessage", "editMessageText", "sendVideo"})


class CountingTelegram(FakeTelegram):
    """The fake Bot API, counting sendMessage calls towards a target."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent = 0
        self.target = 0
        self.done = asyncio.Event()

    async def _m_sendMessage(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        result = await super()._m_sendMessage(params, files)
        self.sent += 1
        if self.sent >= self.target:
            self.done.set()
        return result

    def reset(self, target: int) -> None:
        """Forget old calls and messages; wait for ``target`` new sendMessage calls."""
        self.calls.clear()
        self.messages.clear()
        self.sent, self.target = 0, target
        self.done.clear()


class FloodTelegram(FakeTelegram):
    """The fake Bot API with Telegram's flood limits enforced (429 ``retry_after``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hits: collections.Counter[str] = collections.Counter()
        self.accepted: list[float] = []
        self.rejections: list[tuple[str, int, float, str]] = []
        self._chat_last: dict[int, float] = {}
        self._group_sent: dict[int, collections.deque[float]] = {}
        self._all_sent: collections.deque[float] = collections.deque()

    def _limit(self, chat_id: int, now: float) -> tuple[str, float] | None:
        last = self._chat_last.get(chat_id)
        if last is not None and now - last < 1.0:
            return "per chat (1/s)", 1.0 - (now - last)
        if chat_id < 0:
            group = self._group_sent.setdefault(chat_id, collections.deque())
            while group and now - group[0] >= 60.0:
                group.popleft()
            if len(group) >= 20:
                return "per group (20/min)", 60.0 - (now - group[0])
        while self._all_sent and now - self._all_sent[0] >= 1.0:
            self._all_sent.popleft()
        if len(self._all_sent) >= 30:
            return "overall (30/s)", 1.0 - (now - self._all_sent[0])
        return None

    async def _params(self, request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
        # The body can be read once: the flood check and the fake's handler share it.
        if "bench_params" not in request:
            request["bench_params"] = await super()._params(request)
        params: tuple[dict[str, Any], dict[str, bytes]] = request["bench_params"]
        return params

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if method in _MESSAGE_METHODS:
            params, _ = await self._params(request)
            chat_id = int(params.get("chat_id", 0))
            now = time.monotonic()
            hit = self._limit(chat_id, now)
            if hit is not None:
                reason, wait = hit
                self.hits[reason] += 1
                self.rejections.append((method, chat_id, round(wait, 3), reason))
                call = Call(method, params, now)
                self.calls.append(call)
                retry = max(1, int(wait + 0.999))
                return self._error(
                    call, 429, f"Too Many Requests: retry after {retry}", retry_after=retry
                )
            self._chat_last[chat_id] = now
            if chat_id < 0:
                self._group_sent.setdefault(chat_id, collections.deque()).append(now)
            self._all_sent.append(now)
            self.accepted.append(now)
        return await super()._api(request)


# -- throughput -------------------------------------------------------------------------------


class EchoService:
    """Stands in for the core: answers every message with its own text."""

    def register_adapter(self, adapter: Any) -> None:
        pass

    async def handle(self, msg: IncomingMessage, replier: Replier) -> None:
        await replier.send_text(msg.text)


def _settings(tg: FakeTelegram, tmp: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE": tg.base_url,
        "NEMO_BOT_DB": tmp / "bench.db",
        **extra,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def _echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None and update.message.text is not None
    await update.message.reply_text(update.message.text)


def _bare_bot(tg: FakeTelegram) -> Application[Any, Any, Any, Any, Any, Any]:
    app = (
        ApplicationBuilder()
        .token(TOKEN)
        .base_url(f"{tg.base_url}/bot")
        .base_file_url(f"{tg.base_url}/file/bot")
        .concurrent_updates(True)
        .build()
    )
    app.add_handler(PTBMessageHandler(filters.TEXT & ~filters.COMMAND, _echo))
    return app


async def _timed(tg: CountingTelegram, offset: int) -> float:
    tg.reset(MESSAGES)
    started = time.perf_counter()
    for i in range(MESSAGES):
        tg.private_text(10_000 + offset + i, f"hello number {i} <b>&</b>")
    await asyncio.wait_for(tg.done.wait(), 120)
    return MESSAGES / (time.perf_counter() - started)


async def _adapter_round(tg: CountingTelegram, tmp: Path, offset: int) -> float:
    bot = TelegramBot(
        _settings(tg, tmp, TELEGRAM_OVERALL_RATE=0),
        EchoService(),
        edit_interval=0.0,
        group_edit_interval=0.0,
        poll_timeout=1,
        shutdown_grace=2,
    )
    await bot.start()
    try:
        return await _timed(tg, offset)
    finally:
        await bot.stop()


async def _bare_round(tg: CountingTelegram, offset: int) -> float:
    app = _bare_bot(tg)
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(timeout=1)
        try:
            return await _timed(tg, offset)
        finally:
            await app.updater.stop()
            await app.stop()


async def throughput(result: Result) -> None:
    adapter: list[float] = []
    bare: list[float] = []
    with tempfile.TemporaryDirectory(prefix="nemo-bench-") as tmp:
        tg = CountingTelegram(TOKEN)  # (entered below: its __aenter__ is typed as the base)
        async with tg:
            await _adapter_round(tg, Path(tmp), 0)  # warm-up (imports, first connections)
            await _bare_round(tg, 0)
            for r in range(ROUNDS):
                offset = (r + 1) * MESSAGES
                if r % 2:
                    bare.append(await _bare_round(tg, offset))
                    adapter.append(await _adapter_round(tg, Path(tmp), offset))
                else:
                    adapter.append(await _adapter_round(tg, Path(tmp), offset))
                    bare.append(await _bare_round(tg, offset))
    ratio = median(ratios(adapter, bare))
    result.data["throughput"] = {
        "messages_per_round": MESSAGES,
        "rounds": ROUNDS,
        "adapter_msgs_per_s": adapter,
        "bare_ptb_msgs_per_s": bare,
        "ratio_median": ratio,
    }
    result.add("adapter messages/s (median)", f"{median(adapter):.0f}")
    result.add("bare PTB echo bot messages/s (median)", f"{median(bare):.0f}")
    result.add("adapter / bare PTB", f"{ratio:.2f}x", ">= 0.7x", ratio >= 0.7)


# -- flood limits --------------------------------------------------------------------------------


#: Bot options of the contrast run: pacing exactly at Telegram's limits, without the
#: margin the adapter's defaults keep (jitter then turns into 429 answers).
AT_THE_LIMIT: dict[str, Any] = {
    "edit_interval": 1.0,
    "group_edit_interval": 3.0,
    "overall_margin": 0.0,
}


async def flood(result: Result, label: str, *, judged: bool = True, **options: Any) -> None:
    """Run the 200 chats once; ``options`` change the bot's pacing (``overall_margin``
    builds its overall budget; everything else goes to TelegramBot)."""
    margin = options.pop("overall_margin", None)
    if margin is not None:
        options["budget"] = WindowBudget(30, margin=margin)
    private = CHATS - GROUPS
    prompt = "make a 10-second clip of a lighthouse at dusk"
    sim = fast_sim(chunk_delay=0.3, heartbeat_interval=0.5, slow_step_seconds=2.0)
    sim["gui_phrase_ratio"] = 0.5
    with tempfile.TemporaryDirectory(prefix="nemo-bench-") as tmp:
        tg = FloodTelegram(TOKEN)
        async with simulator_process(**sim) as base, tg:
            settings = _settings(tg, Path(tmp), NEMO_API_BASE=base)
            async with open_core(settings) as service:
                bot = TelegramBot(settings, service, poll_timeout=1, shutdown_grace=5, **options)
                await bot.start()
                try:
                    started = time.monotonic()
                    for i in range(private):
                        tg.private_text(20_000 + i, prompt)
                    for g in range(GROUPS):
                        tg.group_text(-1_000_000 - g, 30_000 + g, prompt, mention=True)
                    chats = [20_000 + i for i in range(private)]
                    chats += [-1_000_000 - g for g in range(GROUPS)]

                    def answered() -> bool:
                        return all(any(m.reply_markup for m in tg.sent_to(c)) for c in chats)

                    await tg.wait_for(answered, within=150, interval=0.25)
                    elapsed = time.monotonic() - started
                finally:
                    await bot.stop()
    message_calls = [c for c in tg.calls if c.method in _MESSAGE_METHODS]
    per_second = collections.Counter(int(t - started) for t in tg.accepted)
    rejected = sum(tg.hits.values())
    result.data.setdefault("flood", {})[label] = {
        "chats": CHATS,
        "groups": GROUPS,
        "seconds_until_all_answered": elapsed,
        "message_calls": len(message_calls),
        "accepted": len(tg.accepted),
        "rejected_429": rejected,
        "rejected_by_limit": dict(tg.hits),
        "edits": sum(1 for c in message_calls if c.method == "editMessageText" and c.status == 200),
        "max_accepted_in_one_second": max(per_second.values(), default=0),
        "rejections (method, chat, seconds short, limit)": tg.rejections[:20],
        "sim": sim,
        "bot_options": {k: str(v) for k, v in options.items()},
    }
    result.add(
        f"{CHATS} chats streaming under flood limits, {label}: 429 answers",
        f"{rejected}"
        + (f" ({', '.join(f'{k}: {v}' for k, v in tg.hits.items())})" if rejected else ""),
        "0" if judged else "",
        (rejected == 0) if judged else None,
    )
    result.add(
        "  all answered in; messages sent",
        f"{elapsed:.0f} s; {len(tg.accepted)} (max {max(per_second.values(), default=0)}/s)",
    )


async def run() -> Result:
    result = Result(NAME)
    await throughput(result)
    await flood(result, "production settings")
    await flood(result, "paced exactly at the limits (contrast)", judged=False, **AT_THE_LIMIT)
    return result


def main() -> None:
    run_main(NAME, run)


if __name__ == "__main__":
    main()


__all__: Sequence[str] = ("main", "run")
