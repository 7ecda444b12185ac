"""History end to end: "my projects", "open N" and "send it again" on every door.

Telegram (PTB against the fake Bot API), Discord (discord.py against the fake
gateway and REST) and the terminal (`nemo-bot chat -m` as a subprocess), each
with the real core against the NemoVideo simulator.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.server import Simulator
from storage import make_store
from tests.fakes.collecting import CollectingReplier
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.simproc import ROOT, sim_process
from tests.fakes.telegram_server import FakeTelegram
from tests.test_discord import answered_with_buttons, content_of, original_edits, running_bot
from tests.test_discord import real_core as discord_core
from tests.test_service import core_for, msg
from tests.test_telegram import finished
from tests.test_telegram import real_core as telegram_core

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

CITY = "make a 10-second clip of a city at night"
DOG = "make a 5-second clip of a dog on a beach"


async def _exported(tg: FakeTelegram, user: int) -> None:
    """``user`` makes the city project and exports it; the video is the first one sent."""
    tg.private_text(user, CITY)
    await tg.wait_for(finished(tg, user), within=15)
    tg.private_text(user, "/export")
    await tg.wait_for(lambda: len(tg.calls_of("sendVideo")) == 1, within=20)


async def test_telegram_lists_projects_opens_an_old_one_and_resends_its_video(
    sim: Simulator, tg: FakeTelegram, tmp_path: Path
) -> None:
    async with telegram_core(sim, tg, tmp_path):
        tg.private_text(51, "/projects")
        await tg.wait_for(lambda: tg.texts(51), within=15)
        assert "no projects yet" in tg.texts(51)[-1]

        await _exported(tg, 51)  # the first video sent
        tg.private_text(51, "/new")
        await tg.wait_for(lambda: "New project" in tg.texts(51)[-1], within=15)
        tg.private_text(51, DOG)
        await tg.wait_for(finished(tg, 51, 2), within=15)

        tg.private_text(51, "/resend")  # the dog project has no video yet
        await tg.wait_for(lambda: "no finished video" in tg.texts(51)[-1], within=15)

        tg.private_text(51, "my projects")
        await tg.wait_for(lambda: "recent projects" in tg.texts(51)[-1], within=15)
        listing = tg.texts(51)[-1]
        renders_before = len(sim.renders.jobs)

        tg.private_text(51, "/open 2")
        await tg.wait_for(lambda: "Back to project 2" in tg.texts(51)[-1], within=15)
        tg.private_text(51, "send it again")
        await tg.wait_for(lambda: len(tg.calls_of("sendVideo")) == 2, within=20)
        tg.private_text(51, "/status")
        await tg.wait_for(lambda: tg.texts(51)[-1].startswith("Timeline ("), within=15)

    lines = listing.splitlines()
    assert (
        lines[1].startswith("1. make a 5-second clip of a dog on a beach") and "current" in lines[1]
    )
    assert lines[2].startswith("2. make a 10-second clip of a city at night")
    assert "🎬" in lines[2] and "🎬" not in lines[1] and "current" not in lines[2]
    assert any("Back to project 2: make a 10-second clip of a city" in t for t in tg.texts(51))
    first, again = tg.calls_of("sendVideo")
    assert again.files["video"] == first.files["video"]  # the same MP4, sent again
    assert len(sim.renders.jobs) == renders_before  # ... without rendering it again
    assert (
        "city" in tg.texts(51)[-1] and "dog" not in tg.texts(51)[-1]
    )  # the timeline is the city project's


async def test_telegram_resend_gets_a_fresh_link_when_the_stored_one_expired(
    sim: Simulator, tg: FakeTelegram, tmp_path: Path
) -> None:
    async with telegram_core(sim, tg, tmp_path):
        await _exported(tg, 52)  # the first video sent
        renders = len(sim.renders.jobs)

        sim.expire_links()  # the link the export delivered now answers 403
        tg.private_text(52, "/resend")
        await tg.wait_for(lambda: len(tg.calls_of("sendVideo")) == 2, within=20)
        assert sim.stats["media_expired"] >= 1  # the stored link was tried and refused
        assert len(sim.renders.jobs) == renders  # sent again from a fresh link, no new render

        sim.forget_renders()  # the backend has no link to give either
        sim.expire_links()
        tg.private_text(52, "send it again")
        await tg.wait_for(lambda: "has expired" in (tg.texts(52) or [""])[-1], within=20)
        offer = tg.sent_to(52)[-1]
        assert offer.callbacks()  # an Export button under the explanation
        tg.press(52, offer, offer.callbacks()[0])
        await tg.wait_for(lambda: len(tg.calls_of("sendVideo")) == 3, within=30)

    first, again, rendered = tg.calls_of("sendVideo")
    assert again.files["video"] == first.files["video"]  # the same MP4
    links = [re.findall(r"http://\S+", str(c.params.get("caption"))) for c in (first, again)]
    assert links[0] and links[1] and links[0] != links[1]  # a link handed out after the expiry
    assert offer.text == (
        "The link to this project's last video has expired and the backend has no new one. "
        "Say export to render it again (exports are free)."
    )
    assert rendered.files["video"][4:8] == b"ftyp"  # the offered export rendered it anew


async def test_telegram_open_without_a_number_or_with_a_wrong_one_explains(
    sim: Simulator, tg: FakeTelegram, tmp_path: Path
) -> None:
    async with telegram_core(sim, tg, tmp_path):
        tg.private_text(52, CITY)
        await tg.wait_for(finished(tg, 52), within=15)
        tg.private_text(52, "/open")
        await tg.wait_for(lambda: "Which project" in tg.texts(52)[-1], within=15)
        tg.private_text(52, "/open 7")
        await tg.wait_for(lambda: "no project 7" in tg.texts(52)[-1], within=15)
        tg.private_text(52, "打开 1", language_code="zh")
        await tg.wait_for(lambda: "第 1 个项目" in tg.texts(52)[-1], within=15)
    assert "已经" in tg.texts(52)[-1]  # it is the current one already


async def test_discord_projects_open_and_resend(
    sim: Simulator, fake: FakeDiscord, tmp_path: Path
) -> None:
    async with (
        discord_core(sim, fake, tmp_path) as (service, settings),
        running_bot(fake, settings, service),
    ):
        first = await fake.slash("video", {"prompt": CITY})
        await fake.wait_for(answered_with_buttons(first), within=20)
        export = await fake.slash("export")
        await fake.wait_for(lambda r: original_edits(export)(r) and bool(r.files), within=20)
        new = await fake.slash("new")
        await fake.wait_for(original_edits(new), within=20)
        second = await fake.slash("video", {"prompt": DOG})
        await fake.wait_for(answered_with_buttons(second), within=20)

        listing = await fake.slash("projects")
        (shown,) = await fake.wait_for(original_edits(listing), within=20)
        renders_before = len(sim.renders.jobs)
        opened = await fake.slash("open", {"number": 2})
        (answer,) = await fake.wait_for(original_edits(opened), within=20)
        resend = await fake.slash("resend")
        done = await fake.wait_for(lambda r: original_edits(resend)(r) and bool(r.files), within=20)

    lines = content_of(shown).splitlines()
    assert lines[1].startswith("1. make a 5-second clip of a dog") and lines[2].startswith(
        "2. make a 10-second"
    )
    assert "🎬" in lines[2]
    assert fake.messages[fake._originals[listing["token"]]]["flags"] & 64  # to the asker only
    assert "Back to project 2" in content_of(answer)
    (mp4,) = done[0].files
    assert mp4.data[4:8] == b"ftyp"
    assert len(sim.renders.jobs) == renders_before


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    """`nemo-bot sim` running as its own process."""
    with sim_process("--render-seconds", "1") as url:
        yield url


def chat(*messages: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`nemo-bot chat -m ... -m ...` as a subprocess."""
    args = [arg for m in messages for arg in ("-m", m)]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NEMO_", "TELEGRAM_"))}
    return subprocess.run(
        [sys.executable, "-m", "bots.cli", "chat", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_the_terminal_keeps_projects_across_runs_and_resends_without_rendering(
    sim_url: str, tmp_path: Path
) -> None:
    env = {"NEMO_API_BASE": sim_url, "NEMO_BOT_DB": str(tmp_path / "bot.db")}
    first = chat(CITY, "export", env=env)
    assert first.returncode == 0, first.stderr
    [link] = re.findall(r"Your video is ready \(1080p MP4\): (\S+)", first.stdout)

    second = chat("new project", DOG, "my projects", "open 2", "send it again", env=env)
    assert second.returncode == 0, second.stderr
    out = second.stdout
    listing = out[out.index("Your recent projects") :]
    assert re.search(
        r"1\. make a 5-second clip of a dog on a beach · last used \d{4}-\d\d-\d\d · ◀ current",
        listing,
    )
    assert re.search(
        r"2\. make a 10-second clip of a city at night · last used [-\d]+ · 🎬", listing
    )
    assert "Back to project 2" in out
    assert out.rstrip().endswith(link) or link in out[out.index("Back to project 2") :]
    assert "Traceback" not in second.stderr


async def test_resend_replaces_a_link_whose_host_refuses_connections(
    sim: Simulator, tmp_path: Path
) -> None:
    async with core_for(sim, tmp_path) as (service, _):
        r = CollectingReplier()
        await service.handle(msg(CITY), r)
        await service.handle(msg("export"), r)
        first = await asyncio.wait_for(r.videos.get(), 20)
        async with make_store(tmp_path / "bot.db") as store:
            session = await store.get_session("test", "u1", "c1")
            assert session is not None
            render = await store.last_video(session.session_id)
            assert render is not None and render.output_url == first.url
            # a file host that is gone: nothing listens on port 9
            await store.update_render(render.render_id, output_url="http://127.0.0.1:9/v.mp4")
        renders = len(sim.renders.jobs)
        await service.handle(msg("send it again"), r)
        again = await asyncio.wait_for(r.videos.get(), 20)
        async with make_store(tmp_path / "bot.db") as store:
            stored = await store.last_video(session.session_id)
    assert again.url.startswith(sim.base_url) and again.url != first.url
    assert r.fetched[-1] is not None and r.fetched[-1] == r.fetched[0]  # the same MP4
    assert len(sim.renders.jobs) == renders  # not rendered again
    assert stored is not None and stored.output_url == again.url  # the fresh link is kept


async def test_telegram_resend_renews_an_expired_token_before_asking_for_a_fresh_link(
    sim: Simulator, tg: FakeTelegram, tmp_path: Path
) -> None:
    async with telegram_core(sim, tg, tmp_path):
        await _exported(tg, 55)  # the first video sent
        renders = len(sim.renders.jobs)

        sim.expire_links()  # the stored link answers 403 ...
        sim.inject("token_expired", endpoint="render_status")  # ... and the token has expired
        tg.private_text(55, "/resend")
        await tg.wait_for(lambda: len(tg.calls_of("sendVideo")) == 2, within=20)
    assert not any("has expired" in t for t in tg.texts(55)), tg.texts(55)
    assert sim.stats["media_expired"] >= 1 and len(sim.renders.jobs) == renders
    first, again = tg.calls_of("sendVideo")
    assert again.files["video"] == first.files["video"]  # the same MP4, from a fresh link
