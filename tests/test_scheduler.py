"""The Telegram outbound scheduler's rules, and the overall budget behind it.

The rule tests drive :class:`OutboundScheduler` with plain calls and a budget the
test opens slot by slot (the :class:`OverallBudget` protocol is the door a shared,
database-backed budget will use too). Coalescing, drafts and unreadable answers
are checked end to end: a real PTB bot against the fake Bot API.
"""

from __future__ import annotations

import asyncio
import collections
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError, TimedOut

from bots.telegram.budget import NoBudget, WindowBudget, budget_for
from bots.telegram.scheduler import ChatLimits, MaybeSent, OutboundScheduler, Priority
from core.app import open_core
from core.config import Settings
from core.types import DEFAULT_ACTIONS, IncomingMessage, Replier
from simulator.server import Simulator
from tests.fakes.collecting import CollectingReplier
from tests.fakes.telegram_server import FakeTelegram
from tests.test_telegram import TOKEN, ScriptedService, finished, running, tg_settings

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
FAST = ChatLimits(private_interval=0.01, group_interval=0.01, group_update_interval=0.01)


class GateBudget:
    """An overall budget whose slots the test hands out one at a time."""

    def __init__(self) -> None:
        self.slots: asyncio.Queue[None] = asyncio.Queue()
        self.paused: list[float] = []
        self.handed: list[int] = []  # tickets, in the order the slots were taken
        self.returned: list[int] = []  # tickets handed back with an answer

    async def reserve(self) -> float:
        await self.slots.get()
        return 0.0

    def taken(self) -> object:
        self.handed.append(len(self.handed))
        return self.handed[-1]

    def answered(self, ticket: object = None) -> None:
        assert isinstance(ticket, int)
        self.returned.append(ticket)

    async def pause(self, seconds: float) -> None:
        self.paused.append(seconds)

    def open(self, n: int = 1) -> None:
        for _ in range(n):
            self.slots.put_nowait(None)


@pytest.fixture
async def gate() -> AsyncIterator[tuple[OutboundScheduler, GateBudget]]:
    budget = GateBudget()
    outbox = OutboundScheduler(budget=budget, limits=FAST)
    outbox.start()
    yield outbox, budget
    await outbox.aclose()


def recorder(log: list[Any], name: Any, result: Any = None) -> Any:
    async def call() -> Any:
        log.append(name)
        return result if result is not None else name

    return call


async def test_the_budget_goes_to_final_answers_then_first_messages_then_updates(
    gate: tuple[OutboundScheduler, GateBudget],
) -> None:
    outbox, budget = gate
    sent: list[str] = []
    outbox.chat_action(9, recorder(sent, "typing"))
    jobs = [
        outbox.submit(1, recorder(sent, "update"), priority=Priority.UPDATE, creates=False),
        outbox.submit(2, recorder(sent, "first"), priority=Priority.FIRST, creates=True),
        outbox.submit(3, recorder(sent, "final"), priority=Priority.FINAL, creates=True),
    ]
    await asyncio.sleep(0.05)
    assert sent == []  # nothing leaves without a slot
    for _ in range(4):
        budget.open()
        await asyncio.sleep(0.05)
    await asyncio.gather(*jobs)
    assert sent == ["final", "first", "update", "typing"]


async def test_each_answer_hands_back_the_ticket_of_its_own_slot_not_the_oldest(
    gate: tuple[OutboundScheduler, GateBudget],
) -> None:
    outbox, budget = gate
    slow_may_finish = asyncio.Event()

    async def slow() -> str:
        await slow_may_finish.wait()
        return "slow"

    first = outbox.submit(1, slow, priority=Priority.FINAL, creates=True)
    second = outbox.submit(2, recorder([], "quick"), priority=Priority.FIRST, creates=True)
    budget.open(2)
    await asyncio.wait_for(second, 10)
    await asyncio.sleep(0.05)
    # The quick call, in the second slot, is answered while the first is on its way:
    # a shared budget must stamp the second slot, not the oldest one still out.
    assert budget.handed == [0, 1] and budget.returned == [1]
    slow_may_finish.set()
    await asyncio.wait_for(first, 10)
    await asyncio.sleep(0.05)
    assert budget.returned == [1, 0]


async def test_a_later_urgent_message_lifts_the_ones_ahead_of_it_instead_of_passing(
    gate: tuple[OutboundScheduler, GateBudget],
) -> None:
    outbox, budget = gate
    sent: list[str] = []
    a = outbox.submit(1, recorder(sent, "1a"), priority=Priority.FIRST, creates=True)
    b = outbox.submit(1, recorder(sent, "1b"), priority=Priority.FINAL, creates=True)
    other = outbox.submit(2, recorder(sent, "2"), priority=Priority.FIRST, creates=True)
    budget.open(3)
    await asyncio.gather(a, b, other)
    # Chat 1's final message made its first message urgent too; chat 1 kept its order.
    assert sent.index("1a") < sent.index("1b")
    assert sent[0] == "1a"


async def test_a_hurried_job_overtakes_waiting_updates(
    gate: tuple[OutboundScheduler, GateBudget],
) -> None:
    outbox, budget = gate
    sent: list[str] = []
    jobs = [
        outbox.submit(i, recorder(sent, i), priority=Priority.UPDATE, creates=False)
        for i in range(1, 4)
    ]
    outbox.hurry(jobs[2], Priority.FINAL)
    budget.open(3)
    await asyncio.gather(*jobs)
    assert sent == [3, 1, 2]


async def test_a_429_in_one_chat_pauses_that_chat_only_and_loses_nothing() -> None:
    outbox = OutboundScheduler(budget=NoBudget(), limits=FAST)
    outbox.start()
    sent: list[tuple[int, int, float]] = []
    refused = {1}
    loop = asyncio.get_running_loop()

    def call(chat: int, n: int) -> Any:
        async def run() -> int:
            if chat in refused:
                refused.discard(chat)
                raise RetryAfter(1)
            sent.append((chat, n, loop.time()))
            return n

        return run

    try:
        started = loop.time()
        jobs = [
            outbox.submit(chat, call(chat, n), priority=Priority.FINAL, creates=True)
            for n in range(3)
            for chat in (1, 2)
        ]
        results = await asyncio.gather(*jobs)
    finally:
        await outbox.aclose()
    assert results == [n for n in range(3) for _ in (1, 2)]
    chat1 = [(n, at) for chat, n, at in sent if chat == 1]
    chat2 = [(n, at) for chat, n, at in sent if chat == 2]
    assert [n for n, _ in chat1] == [0, 1, 2] and [n for n, _ in chat2] == [0, 1, 2]
    assert chat1[0][1] - started >= 1.0  # chat 1 waited out its retry_after...
    assert chat2[-1][1] < chat1[0][1]  # ...while chat 2 was answered in full meanwhile
    assert outbox.stats["429"] == 1


async def test_refusals_from_many_chats_pause_the_overall_budget(
    gate: tuple[OutboundScheduler, GateBudget],
) -> None:
    outbox, budget = gate
    refused: set[int] = {1, 2, 3}

    def call(chat: int) -> Any:
        async def run() -> int:
            if chat in refused:
                refused.discard(chat)
                raise RetryAfter(1)
            return chat

        return run

    jobs = [outbox.submit(c, call(c), priority=Priority.FINAL, creates=True) for c in (1, 2, 3)]
    budget.open(6)
    assert await asyncio.gather(*jobs) == [1, 2, 3]
    assert budget.paused == [1.0]


async def test_many_chats_random_priorities_and_429s_nothing_lost_doubled_or_reordered() -> None:
    rng = random.Random(7)
    outbox = OutboundScheduler(budget=WindowBudget(400, margin=0.0), limits=FAST)
    outbox.start()
    delivered: dict[int, list[int]] = collections.defaultdict(list)

    def call(chat: int, n: int) -> Any:
        async def run() -> None:
            await asyncio.sleep(rng.random() * 0.005)
            if rng.random() < 0.1:
                raise RetryAfter(0)  # (PTB allows 0; the chat just goes to the back)
            delivered[chat].append(n)

        return run

    jobs = []
    try:
        for n in range(8):
            for chat in range(-5, 30):
                priority = rng.choice(list(Priority)[:3])
                jobs.append(outbox.submit(chat, call(chat, n), priority=priority, creates=True))
        await asyncio.wait_for(asyncio.gather(*jobs), 60)
    finally:
        await outbox.aclose()
    assert all(delivered[chat] == list(range(8)) for chat in range(-5, 30))


async def test_a_send_whose_answer_is_unreadable_is_not_repeated_but_an_edit_is(
    gate: tuple[OutboundScheduler, GateBudget],
) -> None:
    outbox, budget = gate
    calls: collections.Counter[str] = collections.Counter()

    def failing(name: str, error: Exception, times: int) -> Any:
        async def run() -> str:
            calls[name] += 1
            if calls[name] <= times:
                raise error
            return name

        return run

    unreadable = TelegramError("Invalid server response")
    send = outbox.submit(1, failing("send", unreadable, 1), priority=Priority.FINAL, creates=True)
    edit = outbox.submit(
        2, failing("edit", TimedOut(), 1), priority=Priority.FINAL, creates=False, repeatable=True
    )
    refused = outbox.submit(
        3,
        failing("refused", BadRequest("chat not found"), 1),
        priority=Priority.FINAL,
        creates=True,
    )
    offline = NetworkError("httpx.ConnectError: connection refused")
    offline.__cause__ = httpx.ConnectError("refused")
    never_left = outbox.submit(
        4, failing("offline", offline, 1), priority=Priority.FINAL, creates=True
    )
    budget.open(10)
    with pytest.raises(MaybeSent):
        await send
    assert await edit == "edit"
    with pytest.raises(BadRequest):
        await refused
    assert await never_left == "offline"  # it certainly did not leave: sent once, later
    assert calls == {"send": 1, "edit": 2, "refused": 1, "offline": 2}


async def test_a_chats_next_call_keeps_its_interval_from_a_delayed_one() -> None:
    # Telegram counts a call when it arrives: one delayed on its way (a busy machine)
    # must not let the chat's next call arrive sooner than the chat's interval after it.
    loop = asyncio.get_running_loop()
    arrived: list[float] = []

    def call(on_the_way: float) -> Any:
        async def send() -> None:
            await asyncio.sleep(on_the_way)
            arrived.append(loop.time())

        return send

    outbox = OutboundScheduler(limits=ChatLimits(private_interval=0.3, burst=1))
    outbox.start()
    try:
        first = outbox.submit(5, call(0.2), priority=Priority.FINAL, creates=False)
        second = outbox.submit(5, call(0.0), priority=Priority.FINAL, creates=False)
        await asyncio.wait_for(asyncio.gather(first, second), 10)
    finally:
        await outbox.aclose()
    assert arrived[1] - arrived[0] >= 0.3 - 0.01


async def test_stale_chat_actions_are_dropped(gate: tuple[OutboundScheduler, GateBudget]) -> None:
    outbox, budget = gate
    sent: list[str] = []
    outbox.chat_action(1, recorder(sent, "old"))
    outbox.chat_action(1, recorder(sent, "new"))  # replaces the older one of the chat
    budget.open(2)
    await asyncio.sleep(0.1)
    assert sent == ["new"]


async def test_the_window_budget_never_lets_more_than_rate_through_in_any_second() -> None:
    now = [100.0]
    budget = WindowBudget(30, margin=0.0, clock=lambda: now[0])
    rng = random.Random(3)
    sent, arrived = [], []
    for _ in range(400):  # callers asking as fast as they can, time barely moving
        start = now[0] + await budget.reserve()
        now[0] = max(now[0], start)
        sent.append(start)
        # The call spends a random while on its way; its answer comes back after it arrived.
        arrived.append(start + rng.random() * 0.3)
        now[0] += 0.001
        now[0] = max(now[0], arrived[-1] + 0.001)
        budget.answered()
    assert sent == sorted(sent)
    arrived.sort()
    for i, at in enumerate(arrived):  # however late each call arrived, no second holds 31
        assert sum(1 for a in arrived[i:] if a < at + 1.0) <= 30


async def test_a_slot_waits_for_the_answer_of_the_call_rate_slots_back() -> None:
    budget = WindowBudget(2, margin=0.0)
    assert await budget.reserve() == 0 and await budget.reserve() == 0
    third = asyncio.ensure_future(budget.reserve())
    await asyncio.sleep(0.05)
    assert not third.done()  # both calls still on their way
    budget.answered()
    assert await third == pytest.approx(1.0, abs=0.05)


async def test_a_paused_budget_hands_out_nothing_until_the_pause_ends() -> None:
    now = [0.0]
    budget = WindowBudget(30, clock=lambda: now[0])
    await budget.pause(2.5)
    assert await budget.reserve() == pytest.approx(2.5)
    assert isinstance(budget_for(0), NoBudget) and isinstance(budget_for(30), WindowBudget)


async def test_a_real_scheduler_keeps_thirty_a_second(
    tmp_path: Path,
) -> None:
    async with FakeTelegram(TOKEN, overall_rate=30) as tg:
        outbox = OutboundScheduler(budget=WindowBudget(30), limits=FAST)
        outbox.start()
        from telegram import Bot

        async with Bot(TOKEN, base_url=f"{tg.base_url}/bot") as bot:
            jobs = [
                outbox.submit(
                    chat,
                    lambda chat=chat: bot.send_message(chat, "hi"),  # type: ignore[misc]
                    priority=Priority.FINAL,
                    creates=True,
                )
                for chat in range(1, 61)
            ]
            await asyncio.gather(*jobs)
        await outbox.aclose()
    assert tg.flood_hits == 0 and len(tg.accepted) == 60


# -- end to end: coalescing, drafts, unreadable answers ------------------------------------


async def test_edits_coalesce_to_the_newest_text_while_the_chat_waits(tmp_path: Path) -> None:
    async def burst(msg: IncomingMessage, replier: Replier) -> None:
        stream = replier.stream()
        for i in range(50):  # far faster than the chat's one call a second
            await stream.append(f"w{i} ")
        await asyncio.sleep(1.5)
        for i in range(50, 100):
            await stream.append(f"w{i} ")
        await stream.finish(DEFAULT_ACTIONS)

    async with FakeTelegram(TOKEN) as tg:
        settings = tg_settings(tg, tmp_path)
        async with running(settings, ScriptedService(burst), edit_interval=1.0):
            tg.group_text(-70, 7, "go", mention=True)
            await tg.wait_for(finished(tg, -70), within=20)
    [reply] = tg.sent_to(-70)
    assert reply.text == " ".join(f"w{i}" for i in range(100))
    assert len(reply.edits) <= 3  # 100 appends: a first message, and a few edits at most


async def test_a_reply_whose_answer_was_unreadable_is_not_posted_twice(tmp_path: Path) -> None:
    async def progress_then_text(msg: IncomingMessage, replier: Replier) -> None:
        for percent in range(0, 100, 10):
            await replier.progress(f"Rendering… {percent}%", percent)
            await asyncio.sleep(0.05)
        await replier.send_text("Here is your answer.")

    async with FakeTelegram(TOKEN) as tg:
        tg.garble("sendMessage", 2)  # the progress bar's first message and the answer
        async with running(tg_settings(tg, tmp_path), ScriptedService(progress_then_text)):
            tg.private_text(5, "export")
            await tg.wait_for(lambda: len(tg.calls_of("sendMessage")) >= 2, within=15)
            await asyncio.sleep(0.5)
    assert tg.texts(5) == ["Rendering… 0%\n▱▱▱▱▱▱▱▱▱▱", "Here is your answer."]
    assert len(tg.calls_of("sendMessage")) == 2 and not tg.calls_of("editMessageText")


async def test_group_replies_edit_and_private_ones_draft_under_an_overall_cap(
    tmp_path: Path,
) -> None:
    async with FakeTelegram(TOKEN, flood_limit=True, overall_rate=30) as tg:
        settings = tg_settings(tg, tmp_path, TELEGRAM_OVERALL_RATE="30")
        async with running(settings, ScriptedService(), edit_interval=1.0, group_edit_interval=3.0):
            for user in range(1, 41):
                tg.private_text(user, "hello")
            for group in range(1, 6):
                tg.group_text(-group, 100 + group, "hello", mention=True)
            chats = [*range(1, 41), *(-g for g in range(1, 6))]
            await tg.wait_for(lambda: all(finished(tg, c)() for c in chats), within=60)
    assert tg.flood_hits == 0
    for chat in chats:
        [reply] = tg.sent_to(chat)
        assert reply.text is not None and reply.text.endswith("word19")
    # Drafts in private chats only (a chat whose answer was complete before its turn came
    # got the final message straight away).
    assert tg.drafts and {chat for chat, _, _ in tg.drafts} <= set(range(1, 41))


# -- the core never waits on a chat platform -------------------------------------------------


class StuckActionReplier(CollectingReplier):
    """A replier whose chat action never comes back (a platform pacing it for ever)."""

    def __init__(self) -> None:
        super().__init__()
        self.released = asyncio.Event()

    async def working(self, kind: str = "typing") -> None:
        await self.released.wait()


async def test_the_backend_stream_opens_while_the_typing_action_still_waits(
    sim: Simulator, tmp_path: Path
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, NEMO_API_BASE=sim.base_url, NEMO_BOT_DB=tmp_path / "db.sqlite"
    )
    replier = StuckActionReplier()
    async with open_core(settings) as service:
        msg = IncomingMessage(platform="test", user_id="1", chat_id="1", text="a clip of a fox")
        await asyncio.wait_for(service.handle(msg, replier), 30)
    assert sim.stats["chat"] == 1
    assert any(s.kind == "stream" for s in replier.said)  # the reply streamed in full
    replier.released.set()


async def test_an_error_status_with_a_readable_answer_is_a_refusal_not_a_maybe(
    gate: tuple[OutboundScheduler, GateBudget],
) -> None:
    outbox, budget = gate

    async def server_error() -> None:
        raise NetworkError("Internal Server Error")  # what PTB raises for a 500 with a body

    job = outbox.submit(1, server_error, priority=Priority.FINAL, creates=True)
    budget.open()
    with pytest.raises(NetworkError) as caught:
        await job
    assert not isinstance(caught.value, MaybeSent)  # the caller may send it again


async def test_a_broadcast_goes_only_when_nothing_a_user_waits_for_is_ready(
    gate: tuple[OutboundScheduler, GateBudget],
) -> None:
    outbox, budget = gate
    sent: list[str] = []
    bulk = [
        outbox.submit(100 + i, recorder(sent, f"bulk{i}"), priority=Priority.BULK, creates=True)
        for i in range(3)
    ]
    budget.open()
    await bulk[0]  # alone, a broadcast goes out
    outbox.chat_action(9, recorder(sent, "typing"))
    users = [
        outbox.submit(1, recorder(sent, "update"), priority=Priority.UPDATE, creates=False),
        outbox.submit(2, recorder(sent, "final"), priority=Priority.FINAL, creates=True),
    ]
    for _ in range(5):
        budget.open()
        await asyncio.sleep(0.05)
    await asyncio.gather(*users, *bulk)
    assert sent == ["bulk0", "final", "update", "typing", "bulk1", "bulk2"]


async def test_updates_are_thinned_without_an_overall_cap_but_answers_are_not() -> None:
    outbox = OutboundScheduler(budget=NoBudget(), limits=FAST, minor_per_second=20)
    outbox.start()
    loop = asyncio.get_running_loop()
    sent: list[tuple[str, float]] = []
    first_out = asyncio.Event()

    def call(name: str) -> Any:
        async def run() -> None:
            sent.append((name, loop.time()))
            first_out.set()

        return run

    try:
        updates = [
            outbox.submit(c, call(f"u{c}"), priority=Priority.UPDATE, creates=False)
            for c in range(10)
        ]
        await first_out.wait()
        final = outbox.submit(99, call("final"), priority=Priority.FINAL, creates=True)
        await asyncio.gather(final, *updates)
    finally:
        await outbox.aclose()
    times = [at for name, at in sent if name.startswith("u")]
    assert times[-1] - times[0] >= 9 / 20 - 0.01  # ten updates, 1/20 s apart at least
    order = [name for name, _ in sent]
    assert order.index("final") < len(order) - 1  # the answer did not wait behind them
