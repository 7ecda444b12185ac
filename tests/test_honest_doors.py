"""What the bot says after a turn, through the real doors: the `nemo-bot chat -m`
process against a simulator process, the Telegram adapter (PTB against the fake Bot
API) and the Discord adapter (discord.py against the fake REST + gateway), both on the
real core and the simulator. Faults come from the simulator's
injection API (`POST /_sim/faults`, or ``Simulator.inject`` in process).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from simulator.server import Simulator
from tests.conftest import fast_sim_config
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.simproc import sim_process
from tests.fakes.telegram_server import FakeTelegram
from tests.test_cli import run_cli
from tests.test_discord import content_of, running_bot
from tests.test_discord import real_core as discord_core
from tests.test_telegram import TOKEN, finished, real_core

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

DONE = re.compile(r"✅|\bDone\b|完成")


@pytest.fixture(scope="module")
def steady_sim() -> Iterator[str]:
    """A simulator process whose replies are deterministic (no silent edits, ADK events only,
    no talk of the web app's screen: a cut reply pointing at "the timeline below" would
    rightly bring the timeline after its verdict)."""
    knobs = ("--silent-edit-ratio", "0", "--old-style-ratio", "0", "--gui-phrase-ratio", "0")
    with sim_process(*knobs, program=("simulator",)) as url:
        yield url


def _inject(url: str, *faults: str) -> None:
    for fault in faults:
        httpx.post(
            f"{url}/_sim/faults", json={"fault": fault, "count": 1, "endpoint": "chat"}
        ).raise_for_status()


def _chats(url: str) -> int:
    return int(httpx.get(f"{url}/_sim/stats").json().get("chat", 0))


def _replies(stdout: str) -> list[str]:
    """The bot's lines, in order (each starts with the robot; actions lines are skipped)."""
    return [line.removeprefix("🤖 ") for line in stdout.splitlines() if line.startswith("🤖")]


def test_terminal_turns_that_changed_nothing_say_so(steady_sim: str, tmp_path: Path) -> None:
    env = {"NEMO_API_BASE": steady_sim, "NEMO_BOT_DB": str(tmp_path / "bot.db")}
    _inject(steady_sim, "ignored", "false_claim", "heartbeat_only")
    result = run_cli(
        "chat",
        "-m", "把它做得更有电影感一些",  # ignored: a tool call, no change, no words
        "-m", "make a 3-second video of a kite",  # "Done, I updated the timeline." (it didn't)
        "-m", "add piano music",  # heartbeats only, then the stream ends
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    ignored, claim, contradiction, no_answer = _replies(result.stdout)
    assert ignored.startswith("🤷 时间线没有任何变化。") or ignored.startswith(
        "🤷 Nothing changed in the timeline."
    )
    assert not DONE.search(ignored)
    assert claim == "Done, I updated the timeline."
    assert contradiction == "ℹ️ The timeline didn't change, though. Say status to see it."
    assert "ended without an answer" in no_answer and not DONE.search(no_answer)
    assert "\n\n\n" not in result.stdout


def test_terminal_refuses_what_it_must_not_send(steady_sim: str, tmp_path: Path) -> None:
    env = {"NEMO_API_BASE": steady_sim, "NEMO_BOT_DB": str(tmp_path / "bot.db")}
    chats = _chats(steady_sim)
    long = "make a video of " + "a lighthouse in a storm, " * 900  # ~22 KB
    result = run_cli("chat", "-m", "/foo", "-m", "/attach", "-m", long, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    unknown, attach, too_long = _replies(result.stdout)
    assert unknown.startswith("🤔 /foo isn't a command I know.") and "/status" in unknown
    assert "/projects" in unknown and "/resend" in unknown  # the history's commands too
    assert attach.startswith("Send a photo, clip or audio file")
    assert "too long" in too_long and "the limit is 4096" in too_long
    assert _chats(steady_sim) == chats  # nothing reached the backend's chat
    assert "a message was not sent" in result.stderr and "exit status 2" in result.stderr


def test_terminal_dropped_stream_shows_the_cut_and_one_verdict(
    steady_sim: str, tmp_path: Path
) -> None:
    env = {"NEMO_API_BASE": steady_sim, "NEMO_BOT_DB": str(tmp_path / "bot.db")}
    _inject(steady_sim, "drop_stream")
    result = run_cli("chat", "-m", "make a 3-second video of a kite", env=env)
    assert result.returncode == 3, result.stdout + result.stderr  # the stream dropped
    cut, verdict, *rest = _replies(result.stdout)
    assert cut.endswith("…")
    assert verdict == "⚠️ The connection to the video service dropped before it finished."
    assert "The timeline did change: Added video track" in result.stdout
    assert "Checking" not in result.stdout and "didn't change" not in result.stdout
    assert rest == []


async def test_telegram_unknown_command_drop_and_ignored_prompt(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    config = fast_sim_config(silent_edit_ratio=0.0, old_style_ratio=0.0, gui_phrase_ratio=0.0)
    async with Simulator(config) as sim, real_core(sim, tg, tmp_path):
        tg.private_text(71, "/foo")
        await tg.wait_for(lambda: tg.texts(71))
        assert tg.texts(71)[0].startswith("🤔 /foo isn't a command I know.")
        assert sim.stats["chat"] == 0

        tg.private_text(71, "make a 5-second video of a lighthouse")
        await tg.wait_for(finished(tg, 71), within=15)
        sim.inject("drop_stream", count=1, endpoint="chat")
        tg.private_text(71, "add jazz music")
        await tg.wait_for(lambda: any("dropped before it finished" in t for t in tg.texts(71)))
        texts = tg.texts(71)
        assert texts[-2].endswith("…")
        assert "The timeline did change: Added audio track: Jazz" in texts[-1]
        assert not any("Checking" in t for t in texts)

        sim.inject("ignored", count=1, endpoint="chat")
        seen = len(texts)
        tg.private_text(71, "让画面更有电影感", language_code="zh-hans")
        await tg.wait_for(lambda: len(tg.texts(71)) > seen, within=15)
        reply = tg.texts(71)[-1]
        assert reply.startswith("🤷 时间线没有任何变化。") and not DONE.search(reply)
    assert TOKEN not in " ".join(tg.texts(71))


async def test_discord_heartbeats_only_and_an_unknown_command(tmp_path: Path) -> None:
    config = fast_sim_config(silent_edit_ratio=0.0, old_style_ratio=0.0, gui_phrase_ratio=0.0)
    async with (
        Simulator(config) as sim,
        FakeDiscord() as fake,
        discord_core(sim, fake, tmp_path) as (service, settings),
        running_bot(fake, settings, service),
    ):
        sim.inject("heartbeat_only", count=1, endpoint="chat")
        await fake.slash("video", {"prompt": "make a 10-second clip of a city at night"})
        said, *_ = await fake.wait_for(
            lambda r: "ended without an answer" in content_of(r), within=20
        )
        assert not DONE.search(content_of(said))
        await fake.user_message(f"<@{fake.bot_user['id']}> /foo")
        unknown, *_ = await fake.wait_for(lambda r: "isn't a command I know" in content_of(r))
        assert content_of(unknown).startswith("🤔 /foo isn't a command I know.")
    assert sim.stats["chat"] == 1  # the heartbeats' turn only: /foo never reached it
