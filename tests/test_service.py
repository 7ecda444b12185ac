"""The conversation service against the simulator over real HTTP/SSE, with a collecting adapter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from core.app import build_service, open_core
from core.client import NemoClient
from core.config import Settings
from core.polling import PollPolicy
from core.service import ConversationService
from core.types import Action, Attachment, IncomingMessage, Intent, Video
from core.wire import RenderState
from simulator.server import Simulator
from storage.base import RenderRecord
from storage.sqlite import SQLiteStore
from tests.conftest import fast_sim_config
from tests.fakes.collecting import CollectingAdapter, CollectingReplier

FAST_POLL = PollPolicy(min_interval=0.05, max_interval=0.2, first_delay=0.05)


def settings_for(sim: Simulator, tmp_path: Path, **extra: object) -> Settings:
    values: dict[str, object] = {"NEMO_BOT_DB": tmp_path / "bot.db", **extra}
    return Settings(_env_file=None, NEMO_API_BASE=sim.base_url, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def core_for(
    sim: Simulator, tmp_path: Path, *, policy: PollPolicy = FAST_POLL, **extra: object
) -> AsyncIterator[tuple[ConversationService, CollectingAdapter]]:
    adapter = CollectingAdapter()
    async with open_core(settings_for(sim, tmp_path, **extra), poll_policy=policy) as service:
        service.register_adapter(adapter)
        await service.start()
        yield service, adapter


def msg(text: str = "", *, user: str = "u1", chat: str = "c1", **kw: object) -> IncomingMessage:
    return IncomingMessage(platform="test", user_id=user, chat_id=chat, text=text, **kw)  # type: ignore[arg-type]


def file_att(name: str, data: bytes, *, size: int | None = None) -> tuple[Attachment, list[int]]:
    reads: list[int] = []

    async def read() -> bytes:
        reads.append(1)
        return data

    return Attachment(filename=name, size=len(data) if size is None else size, read=read), reads


async def test_whole_scenario_generate_edit_status_credits_export(
    sim: Simulator, tmp_path: Path
) -> None:
    async with core_for(sim, tmp_path) as (service, _):
        r = CollectingReplier()
        await service.handle(msg("generate a 10-second clip of a futuristic city at night"), r)
        await service.handle(msg("add lo-fi background music"), r)
        await service.handle(msg('add a title "Urban Dreams"'), r)
        r.clear()
        await service.handle(msg("status"), r)
        summary = r.all_text()
        assert summary.startswith("Timeline (3 tracks)")
        assert "Urban Dreams" in summary
        r.clear()
        await service.handle(msg("credits"), r)
        assert r.said[-1].private and "available" in r.said[-1].text
        r.clear()
        await service.handle(msg("export"), r)
        video = await asyncio.wait_for(r.videos.get(), 20)
        assert video.url.startswith(sim.base_url)
        assert video.summary and video.summary.startswith("Timeline (3 tracks)")
        assert r.fetched[-1] is not None and r.fetched[-1][4:8] == b"ftyp"
        percents = [s.percent for s in r.said if s.kind == "progress"]
        assert percents[0] == 0 and percents[-1] == 100


async def test_first_contact_is_silent_and_reuses_the_token(sim: Simulator, tmp_path: Path) -> None:
    async with core_for(sim, tmp_path) as (service, _):
        r = CollectingReplier()
        await service.handle(msg("make a video of a sunrise"), r)
        await service.handle(msg("add piano music"), r)
        await service.handle(msg("credits", chat="other"), r)
    text = r.all_text()
    assert "nmv_" not in text and "token" not in text.lower()
    assert sim.stats["tokens_minted"] == 1
    # the same user after a restart: same token, same session
    async with core_for(sim, tmp_path) as (service, _):
        await service.handle(msg("status"), CollectingReplier())
    assert sim.stats["tokens_minted"] == 1


async def test_token_expired_is_renewed_and_retried_once(sim: Simulator, tmp_path: Path) -> None:
    async with core_for(sim, tmp_path) as (service, _):
        r = CollectingReplier()
        await service.handle(msg("make a video of a forest"), r)
        sim.inject("token_expired", count=1, endpoint="chat")
        r.clear()
        await service.handle(msg("add rain sounds music"), r)
        assert not any("sign in" in t for t in r.texts())
        assert any(s.kind in ("stream", "text") for s in r.said)


async def test_lost_session_starts_fresh_and_says_so(sim: Simulator, tmp_path: Path) -> None:
    async with core_for(sim, tmp_path) as (service, _):
        r = CollectingReplier()
        await service.handle(msg("make a video of a beach"), r)
        sim.inject("session_lost", count=1, endpoint="chat")
        r.clear()
        await service.handle(msg("make a video of the sea at dawn"), r)
        assert any("starts fresh" in t for t in r.texts())
        assert len(r.texts()) >= 2


async def test_out_of_credits_links_registration_for_anonymous_users(
    sim: Simulator, tmp_path: Path
) -> None:
    async with core_for(sim, tmp_path) as (service, _):
        r = CollectingReplier()
        await service.handle(msg("credits"), r)
        sim.inject("no_credits", count=1, endpoint="chat")
        r.clear()
        await service.handle(msg("make a video of snow"), r)
        assert "https://nemovideo.com/register?bind=anon_" in r.all_text()


async def test_export_blocked_explains_the_plan(sim: Simulator, tmp_path: Path) -> None:
    async with core_for(sim, tmp_path) as (service, _):
        r = CollectingReplier()
        await service.handle(msg("make a video of a desert"), r)
        sim.inject("export_blocked", count=1, endpoint="render")
        r.clear()
        await service.handle(msg("export"), r)
        assert "free plan" in r.all_text()


async def test_export_with_an_empty_timeline_says_so(sim: Simulator, tmp_path: Path) -> None:
    async with core_for(sim, tmp_path) as (service, _):
        r = CollectingReplier()
        await service.handle(msg("export"), r)
        assert "nothing to export" in r.all_text().lower()
        assert sim.stats["renders"] == 0


async def test_dropped_stream_is_reported_checked_and_not_resent(
    sim: Simulator, tmp_path: Path
) -> None:
    async with core_for(sim, tmp_path) as (service, _):
        r = CollectingReplier()
        await service.handle(msg("make a video of a city"), r)
        chats_before = sim.stats["chat"]
        sim.inject("drop_stream", count=1, endpoint="chat")
        r.clear()
        await service.handle(msg("add jazz music"), r)
        assert sim.stats["chat"] == chats_before + 1
        assert any("connection to the video service dropped" in t for t in r.texts())


async def test_silent_edit_reports_what_changed(sim: Simulator, tmp_path: Path) -> None:
    async with core_for(sim, tmp_path) as (service, _):
        r = CollectingReplier()
        await service.handle(msg("make a 10-second video of a city at night"), r)
        sim.inject("silent_edit", count=1, endpoint="chat")
        r.clear()
        await service.handle(msg("add lo-fi background music"), r)
        text = r.all_text()
        assert "Added" in text and "audio" in text.lower()


async def test_heartbeat_only_stream_times_out_with_a_message(tmp_path: Path) -> None:
    config = fast_sim_config(heartbeat_only_seconds=5.0)
    async with (
        Simulator(config) as sim,
        core_for(sim, tmp_path, NEMO_HEARTBEAT_NOTICE_S=0.2, NEMO_HEARTBEAT_TIMEOUT_S=0.6) as (
            service,
            _,
        ),
    ):
        r = CollectingReplier()
        sim.inject("heartbeat_only", count=1, endpoint="chat")
        await service.handle(msg("make a video of mountains"), r)
        texts = r.texts()
        assert any("Still working" in t for t in texts)
        assert any("long time" in t for t in texts)


async def test_stream_error_line_becomes_a_friendly_message(sim: Simulator, tmp_path: Path) -> None:
    async with core_for(sim, tmp_path) as (service, _):
        r = CollectingReplier()
        sim.inject("stream_error", count=1, endpoint="chat")
        await service.handle(msg("make a video of a storm"), r)
        text = r.all_text()
        assert "{" not in text and "Traceback" not in text
        assert text


async def test_uploads_checked_before_download(sim: Simulator, tmp_path: Path) -> None:
    async with core_for(sim, tmp_path, NEMO_MAX_UPLOAD_MB=1) as (service, _):
        r = CollectingReplier()
        big, big_reads = file_att("huge.mp4", b"", size=5 * 1024 * 1024)
        exe, exe_reads = file_att("tool.exe", b"MZ")
        empty, _ = file_att("empty.png", b"")
        await service.handle(msg(attachments=(big, exe, empty)), r)
        text = r.all_text()
        assert "too large" in text and "MP4, MOV" in text and "empty" in text
        assert big_reads == [] and exe_reads == []
        assert sim.stats["upload"] == 0


async def test_photo_upload_with_caption_runs_the_instruction(
    sim: Simulator, tmp_path: Path, png: bytes
) -> None:
    async with core_for(sim, tmp_path) as (service, _):
        r = CollectingReplier()
        photo, reads = file_att("../../etc/photo.png", png)
        await service.handle(msg("make this the opening shot", attachments=(photo,)), r)
        assert reads == [1]
        assert "Added photo.png" in r.all_text()
        assert sim.stats["upload"] == 1
        assert sim.stats["chat"] == 1


async def test_one_request_per_session_others_queue(sim: Simulator, tmp_path: Path) -> None:
    async with core_for(sim, tmp_path) as (service, _):
        r1, r2, r3 = CollectingReplier(), CollectingReplier(), CollectingReplier()
        await asyncio.gather(
            service.handle(msg("make a video of a cat"), r1),
            service.handle(msg("add cheerful music"), r2),
            service.handle(msg("make a video of a dog", user="u2"), r3),
        )
        # The second request of the session waited, showing its place, then its turn came.
        notices = [(s.text, s.actions) for s in r2.said if s.kind == "notice"]
        assert notices[0][0].startswith("⏳ 1 request ahead of you")
        assert notices[0][1] == (Action.CANCEL,)
        assert notices[-1] == ("▶️ Your turn — working on it now.", ())
        assert not any(s.kind == "notice" for s in r1.said + r3.said)
        assert sim.stats["concurrent_duplicates"] == 0


async def test_new_project_gets_a_new_session_not_a_new_token(
    sim: Simulator, tmp_path: Path
) -> None:
    async with core_for(sim, tmp_path) as (service, _):
        r = CollectingReplier()
        await service.handle(msg("make a video of a lake"), r)
        await service.handle(msg("new project"), r)
        await service.handle(msg("status"), r)
        assert "empty" in r.texts()[-1]
    assert sim.stats["tokens_minted"] == 1
    assert sim.stats["session"] == 2


async def test_allowlist_refuses_politely(sim: Simulator, tmp_path: Path) -> None:
    async with core_for(sim, tmp_path, NEMO_ALLOWED_USERS="999") as (service, _):
        r = CollectingReplier()
        await service.handle(msg("make a video"), r)
        await service.handle(msg("x", intent=Intent.EXPORT), r)
        assert all("private" in t for t in r.texts())
        assert sim.stats["token"] == 0


async def test_render_resumes_after_restart_and_is_delivered_once(tmp_path: Path) -> None:
    async with Simulator(fast_sim_config(seed=3, render_seconds=1.5)) as sim:
        async with core_for(sim, tmp_path) as (service, _):
            await service.handle(msg("make a video of a bridge"), CollectingReplier())
            await service.handle(msg("export"), CollectingReplier())
        # the process stopped before the render finished; a new one picks it up
        async with core_for(sim, tmp_path) as (service, adapter):
            replier = adapter.replier_for(msg().ref())
            video = await asyncio.wait_for(replier.videos.get(), 20)
            assert video.url.startswith(sim.base_url)
        async with core_for(sim, tmp_path) as (service, adapter):
            await asyncio.sleep(0.3)
            assert service.renders.in_flight == 0
            assert adapter.repliers == {}


class SlowQueuedReplier(CollectingReplier):
    """A replier whose queue notice takes a while to send (as a rate-limited chat would)."""

    async def notice(self, text: str, **kw: object) -> None:  # type: ignore[override]
        await asyncio.sleep(0.1)
        await super().notice(text, **kw)  # type: ignore[arg-type]


async def test_the_session_queue_never_runs_two_requests_at_once(
    sim: Simulator, tmp_path: Path
) -> None:
    async with core_for(sim, tmp_path) as (service, _):
        running = peak = 0

        async def slow_chat(req: object) -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.05)
            running -= 1

        service._dispatch.handlers[Intent.CHAT] = slow_chat  # type: ignore[assignment]

        async def late(text: str) -> None:
            await asyncio.sleep(0.07)  # after the first request ended, before the queued ran
            await service.handle(msg(text), SlowQueuedReplier())

        await asyncio.gather(
            service.handle(msg("make a video of a cat"), SlowQueuedReplier()),
            service.handle(msg("make it blue"), SlowQueuedReplier()),
            late("add music"),
        )
        assert peak == 1


async def test_cancelled_waiters_free_their_place_in_the_queue(
    sim: Simulator, tmp_path: Path
) -> None:
    async with core_for(sim, tmp_path) as (service, _):
        release = asyncio.Event()

        async def blocking_chat(req: object) -> None:
            await release.wait()

        service._dispatch.handlers[Intent.CHAT] = blocking_chat  # type: ignore[assignment]
        first = asyncio.create_task(service.handle(msg("make a video"), CollectingReplier()))
        await asyncio.sleep(0.01)
        waiters = [
            asyncio.create_task(service.handle(msg(f"edit {i}"), CollectingReplier()))
            for i in range(3)
        ]
        await asyncio.sleep(0.01)
        for task in waiters:
            task.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        r = CollectingReplier()
        late = asyncio.create_task(service.handle(msg("one more edit"), r))
        await asyncio.sleep(0.01)
        # Queued (not refused as busy), behind the running one only.
        assert next(s.text for s in r.said if s.kind == "notice").startswith("⏳ 1 request ahead")
        release.set()
        await asyncio.gather(first, late)
        assert service.gate.active_sessions == 0  # type: ignore[attr-defined]


async def test_credits_need_no_project(sim: Simulator, tmp_path: Path) -> None:
    async with core_for(sim, tmp_path) as (service, _):
        r = CollectingReplier()
        await service.handle(msg("credits", chat="group-1"), r)
        assert "Credits: 100 available" in r.texts()[-1]
    assert sim.stats["session"] == 0


class StuckUploadReplier(CollectingReplier):
    """send_video never finishes (a huge upload), like a process stopped or killed mid-send."""

    def __init__(self) -> None:
        super().__init__()
        self.sending = asyncio.Event()

    async def send_video(self, video: object) -> None:  # type: ignore[override]
        self.sending.set()
        await asyncio.sleep(3600)


async def test_a_delivery_cut_short_by_shutdown_is_delivered_after_restart(
    tmp_path: Path,
) -> None:
    async with Simulator(fast_sim_config(render_seconds=0.3)) as sim:
        async with core_for(sim, tmp_path) as (service, _):
            stuck = StuckUploadReplier()
            await service.handle(msg("make a video of a harbour"), stuck)
            await service.handle(msg("export"), stuck)
            await asyncio.wait_for(stuck.sending.wait(), 20)
        async with core_for(sim, tmp_path) as (_, adapter):
            replier = adapter.replier_for(msg().ref())
            video = await asyncio.wait_for(replier.videos.get(), 20)
            assert video.url.startswith(sim.base_url)


async def test_a_delivery_claimed_by_a_dead_process_is_delivered_after_its_lease(
    tmp_path: Path,
) -> None:
    short_lease = PollPolicy(
        min_interval=0.05, max_interval=0.1, first_delay=0.05, delivery_lease=0.5
    )
    sim_config = fast_sim_config(render_seconds=0.3)
    async with Simulator(sim_config) as sim, core_for(sim, tmp_path) as (service, _):
        stuck = StuckUploadReplier()
        await service.handle(msg("make a video of a lighthouse"), stuck)
        await service.handle(msg("export"), stuck)
        await asyncio.wait_for(stuck.sending.wait(), 20)
        # the first process still holds the claim and never finishes (as after kill -9);
        # a second process on the same database takes over once the lease runs out
        async with core_for(sim, tmp_path, policy=short_lease) as (_, adapter):
            replier = adapter.replier_for(msg().ref())
            video = await asyncio.wait_for(replier.videos.get(), 20)
            assert video.url.startswith(sim.base_url)
            await asyncio.sleep(0.3)
            assert replier.videos.empty()  # delivered once


async def test_an_export_recorded_but_never_sent_is_reported_after_restart(
    sim: Simulator, tmp_path: Path
) -> None:
    """The process died between recording the export and the backend accepting it."""
    async with core_for(sim, tmp_path) as (service, _):
        await service.handle(msg("make a video of a canyon"), CollectingReplier())
        session = await service._store.get_session("test", "u1", "c1")
        assert session is not None
        await service._store.add_render(
            RenderRecord(
                render_id="render_never_sent",
                session_id=session.session_id,
                platform="test",
                user_id="u1",
                chat_id="c1",
                status=RenderState.SUBMITTING,
            )
        )
    async with core_for(sim, tmp_path) as (service, adapter):
        await asyncio.wait_for(service.wait_idle(), 10)
        said = adapter.replier_for(msg().ref()).texts()
        assert any("never reached the video service" in t for t in said)
        assert await service._store.undelivered_renders() == []


async def test_a_refused_export_leaves_no_render_behind(sim: Simulator, tmp_path: Path) -> None:
    async with core_for(sim, tmp_path) as (service, _):
        r = CollectingReplier()
        await service.handle(msg("make a video of a glacier"), r)
        sim.inject("export_blocked", count=1, endpoint="render")
        await service.handle(msg("export"), r)
        assert await service._store.undelivered_renders() == []
        await service.handle(msg("export"), r)
        video = await asyncio.wait_for(r.videos.get(), 20)
        assert video.url.startswith(sim.base_url)


class LoseSubmitReply:
    """An aiohttp client middleware: passes every call through, but loses the reply
    to the first render submit (the backend got it; the client sees a read time-out)."""

    def __init__(self) -> None:
        self.lost = 0

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        response = await handler(request)
        is_submit = request.method == "POST" and request.url.path.endswith("/proxy/lambda")
        if is_submit and not self.lost:
            self.lost += 1
            response.close()
            raise aiohttp.SocketTimeoutError("reply lost")
        return response


async def test_an_export_whose_reply_was_lost_is_still_followed_and_delivered(
    sim: Simulator, tmp_path: Path
) -> None:
    loser = LoseSubmitReply()
    settings = settings_for(sim, tmp_path)
    async with (
        SQLiteStore(settings.nemo_bot_db) as store,
        aiohttp.ClientSession(middlewares=(loser,)) as http,  # borrowed, not closed
        NemoClient(base_url=sim.base_url, http=http) as client,
    ):
        service = build_service(
            settings=settings, store=store, client=client, poll_policy=FAST_POLL
        )
        r = CollectingReplier()
        await service.handle(msg("make a video of a volcano"), r)
        await service.handle(msg("export"), r)
        video = await asyncio.wait_for(r.videos.get(), 20)
        await service.aclose()
    assert loser.lost == 1
    assert sim.stats["renders"] == 1  # followed, not resubmitted
    assert video.url.startswith(sim.base_url)
    assert not any("Nothing was lost" in t for t in r.texts())


class SlowUploadReplier(CollectingReplier):
    """send_video takes longer than a delivery lease (a big upload)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.sending = asyncio.Event()

    async def send_video(self, video: Video) -> None:
        self.sending.set()
        await asyncio.sleep(self.seconds)
        await super().send_video(video)


async def test_a_long_upload_keeps_its_claim_so_a_second_process_does_not_deliver_too(
    tmp_path: Path,
) -> None:
    lease = PollPolicy(min_interval=0.05, max_interval=0.1, first_delay=0.05, delivery_lease=0.3)
    sim_config = fast_sim_config(render_seconds=0.3)
    async with (
        Simulator(sim_config) as sim,
        core_for(sim, tmp_path, policy=lease) as (first, _),
    ):
        slow = SlowUploadReplier(1.2)  # four leases long
        await first.handle(msg("make a video of a waterfall"), slow)
        await first.handle(msg("export"), slow)
        await asyncio.wait_for(slow.sending.wait(), 20)
        async with core_for(sim, tmp_path, policy=lease) as (_, adapter):
            await asyncio.wait_for(slow.videos.get(), 20)  # the first process delivered
            await asyncio.sleep(0.5)
            assert adapter.replier_for(msg().ref()).videos.empty()  # the second did not


async def test_a_resumed_render_is_delivered_in_the_users_language(tmp_path: Path) -> None:
    async with Simulator(fast_sim_config(render_seconds=1.0)) as sim:
        async with core_for(sim, tmp_path) as (service, _):
            r = CollectingReplier()
            await service.handle(msg("make a video of a city at night", language="zh-hans"), r)
            await service.handle(msg("导出", language="zh-hans"), r)
        async with core_for(sim, tmp_path) as (_, adapter):
            video = await asyncio.wait_for(adapter.replier_for(msg().ref()).videos.get(), 20)
            assert "视频已完成" in video.caption
            assert adapter.refs[0].language == "zh"
