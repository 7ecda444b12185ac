"""What the bot says after a chat turn is what the session's state shows.

Each case is reproduced with the simulator's fault injection, through the real
service over HTTP/SSE and SQLite: a turn the backend ignored, a stream of only
heartbeats, a reply that claims an edit the draft does not show, a dropped
stream, an error inside the stream after a reply that worked, a first turn
without a stored draft, an over-long message, unknown slash commands, a bare
``/attach``, and GUI talk with trailing blank lines.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from core.relay import MAX_PROMPT_CHARS
from core.types import Action
from simulator.server import Simulator
from tests.conftest import fast_sim_config
from tests.fakes.collecting import CollectingReplier
from tests.test_service import core_for, file_att, msg

#: Sim settings that make every reply deterministic: no silent edits, no old-style events.
STEADY = {"silent_edit_ratio": 0.0, "old_style_ratio": 0.0, "gui_phrase_ratio": 0.0}
DONE = re.compile(r"✅|\bDone\b|完成")


async def _with_video(service: object, r: CollectingReplier) -> None:
    await service.handle(msg("make a 10-second video of a harbour at dawn"), r)  # type: ignore[attr-defined]
    assert "Timeline" in r.all_text() or "generated" in r.all_text()
    r.clear()


async def test_a_prompt_the_backend_ignored_is_not_called_done(tmp_path: Path) -> None:
    async with Simulator(fast_sim_config(**STEADY)) as sim, core_for(sim, tmp_path) as (svc, _):
        r = CollectingReplier()
        await _with_video(svc, r)
        sim.inject("ignored", count=1, endpoint="chat")
        await svc.handle(msg("把它做得更有电影感一些"), r)
        text = r.all_text()
        assert not DONE.search(text), text
        # Told in the language of the prompt (the message carries no language of its own).
        assert "时间线没有任何变化" in text
        assert "添加 lo-fi 音乐" in text  # what to try instead
        assert r.said[-1].actions == (Action.EXPORT, Action.TIMELINE, Action.CREDITS)


async def test_a_stream_of_only_heartbeats_says_no_answer_came(tmp_path: Path) -> None:
    async with Simulator(fast_sim_config(**STEADY)) as sim, core_for(sim, tmp_path) as (svc, _):
        r = CollectingReplier()
        sim.inject("heartbeat_only", count=1, endpoint="chat")
        await svc.handle(msg("make a 10-second video of a harbour at dawn"), r)
        text = r.all_text()
        assert not DONE.search(text), text
        assert "ended without an answer" in text and "didn't change" in text
        assert "make a 10-second clip" in text  # an empty project: how to start
        assert sim.stats["chat"] == 1  # told, not resent


async def test_a_claimed_edit_the_draft_does_not_show_is_contradicted(tmp_path: Path) -> None:
    async with Simulator(fast_sim_config(**STEADY)) as sim, core_for(sim, tmp_path) as (svc, _):
        r = CollectingReplier()
        await _with_video(svc, r)
        sim.inject("false_claim", count=1, endpoint="chat")
        await svc.handle(msg("make it pop"), r)
        texts = r.texts()
        assert texts[0] == "Done, I updated the timeline."  # the backend's own words
        assert texts[-1] == "ℹ️ The timeline didn't change, though. Say status to see it."


async def test_an_answer_that_claims_nothing_gets_no_note(tmp_path: Path) -> None:
    async with Simulator(fast_sim_config(**STEADY)) as sim, core_for(sim, tmp_path) as (svc, _):
        r = CollectingReplier()
        await _with_video(svc, r)
        await svc.handle(msg("what is in my project?"), r)
        texts = r.texts()
        assert texts[0].startswith("Your project has 1 track")
        assert not any("didn't change" in t for t in texts)


async def test_a_silent_change_that_the_summary_cannot_show_is_not_called_no_change(
    tmp_path: Path,
) -> None:
    async with Simulator(fast_sim_config(**STEADY)) as sim, core_for(sim, tmp_path) as (svc, _):
        r = CollectingReplier()
        await _with_video(svc, r)
        sim.inject("silent_edit", count=1, endpoint="chat")
        await svc.handle(msg("make it pop"), r)  # recorded on the clip, not in the summary
        text = r.all_text()
        assert "changed details of your project" in text
        assert "didn't change" not in text


async def test_a_dropped_stream_shows_the_cut_and_what_the_state_shows(tmp_path: Path) -> None:
    async with Simulator(fast_sim_config(**STEADY)) as sim, core_for(sim, tmp_path) as (svc, _):
        r = CollectingReplier()
        await _with_video(svc, r)
        sim.inject("drop_stream", count=1, endpoint="chat")
        await svc.handle(msg("add jazz music"), r)
        texts = r.texts()
        assert len(texts) == 2, texts
        cut, verdict = texts
        assert cut.endswith("…")  # the half sentence reads as cut off
        assert verdict.startswith("⚠️ The connection to the video service dropped")
        assert "The timeline did change: Added audio track: Jazz" in verdict
        assert "Checking" not in verdict and "Done" not in verdict
        assert sim.stats["chat"] == 2  # not resent


async def test_a_dropped_stream_that_changed_nothing_yet_says_so(tmp_path: Path) -> None:
    async with Simulator(fast_sim_config(**STEADY)) as sim, core_for(sim, tmp_path) as (svc, _):
        r = CollectingReplier()
        sim.inject("drop_stream", count=1, endpoint="chat")
        await svc.handle(msg("hello, what can you make?"), r)
        verdict = r.texts()[-1]
        assert "hasn't changed" in verdict and "say status in a minute" in verdict.lower()
        assert not DONE.search(verdict)


async def test_an_error_in_the_stream_is_told_even_after_a_reply_that_worked(
    tmp_path: Path,
) -> None:
    async with Simulator(fast_sim_config(**STEADY)) as sim, core_for(sim, tmp_path) as (svc, _):
        r = CollectingReplier()
        await _with_video(svc, r)
        for _ in range(3):  # each of the simulator's three error shapes
            sim.inject("late_error", count=1, endpoint="chat")
            await svc.handle(msg("add a title saying Hello"), r)
            texts = r.texts()
            assert texts[0].startswith("I added the title")
            assert texts[-1].startswith("⚠️ The video service reported a problem")
            assert "The timeline did change: Added text track" in texts[-1]
            assert "{" not in texts[-1]
            r.clear()
            await svc.handle(msg('remove the title "Hello"'), r)
            r.clear()


async def test_an_error_before_any_change_says_the_timeline_did_not_change(
    tmp_path: Path,
) -> None:
    async with Simulator(fast_sim_config(**STEADY)) as sim, core_for(sim, tmp_path) as (svc, _):
        r = CollectingReplier()
        await _with_video(svc, r)
        sim.inject("stream_error", count=1, endpoint="chat")
        await svc.handle(msg("add lo-fi music"), r)
        text = r.texts()[-1]
        assert text.startswith("⚠️ The video service reported a problem")
        assert "The timeline didn't change" in text
        assert not DONE.search(text)


async def test_a_first_turn_without_a_stored_draft_compares_with_the_real_one(
    tmp_path: Path,
) -> None:
    async with Simulator(fast_sim_config(**STEADY)) as sim:
        async with core_for(sim, tmp_path) as (svc, _):
            r = CollectingReplier()
            await _with_video(svc, r)
        # The store forgets the draft it saw (an older database, a store restored from a
        # backup): the backend's session still has its video track.
        with sqlite3.connect(tmp_path / "bot.db") as db:
            db.execute("UPDATE sessions SET draft_json = NULL")
        async with core_for(sim, tmp_path) as (svc, _):
            sim.inject("ignored", count=1, endpoint="chat")
            await svc.handle(msg("make it more cinematic"), r)
            text = r.all_text()
            assert "Added" not in text and not DONE.search(text), text
            assert "Nothing changed in the timeline" in text


async def test_an_over_long_message_is_refused_with_the_limit_and_not_sent(
    sim: Simulator, tmp_path: Path
) -> None:
    async with core_for(sim, tmp_path) as (svc, _):
        r = CollectingReplier()
        long = "make a video of " + "a very long description " * 1000  # ~22 KB
        await svc.handle(msg(long), r)
        text = r.all_text()
        assert f"the limit is {MAX_PROMPT_CHARS}" in text and str(len(long.strip())) in text
        assert "I didn't pass it on" in text
        assert sim.stats["chat"] == 0
        r.clear()
        await svc.handle(msg("x" * MAX_PROMPT_CHARS), r)  # the limit itself is fine
        assert sim.stats["chat"] == 1


async def test_files_with_an_over_long_instruction_are_kept_and_the_text_refused(
    sim: Simulator, tmp_path: Path, png: bytes
) -> None:
    async with core_for(sim, tmp_path) as (svc, _):
        r = CollectingReplier()
        photo, _ = file_att("opening.png", png)
        await svc.handle(msg("use it " * 1000, attachments=(photo,)), r)
        added, refused = r.texts()
        assert added.startswith("📎 Added opening.png")
        assert "too long" in refused and f"the limit is {MAX_PROMPT_CHARS}" in refused
        assert sim.stats["upload"] == 1 and sim.stats["chat"] == 0


async def test_unknown_slash_commands_list_the_commands_and_never_reach_the_backend(
    sim: Simulator, tmp_path: Path
) -> None:
    async with core_for(sim, tmp_path) as (svc, _):
        for text, named in (
            ("/foo", "/foo"),
            ("/imagine a city", "/imagine"),
            ("/Foo@nemo_bot", "/Foo"),
        ):
            r = CollectingReplier()
            await svc.handle(msg(text), r)
            (said,) = r.texts()
            assert said.startswith(f"🤔 {named} isn't a command I know.")
            for command in ("/status", "/credits", "/export", "/new", "/help"):
                assert command in said
        r = CollectingReplier()
        await svc.handle(msg("/foo", language="zh-CN"), r)
        assert "不是我认识的命令" in r.all_text()
    assert sim.stats["chat"] == 0 and sim.stats["tokens_minted"] == 0


async def test_a_bare_attach_asks_for_a_file(sim: Simulator, tmp_path: Path) -> None:
    async with core_for(sim, tmp_path) as (svc, _):
        r = CollectingReplier()
        await svc.handle(msg("/attach"), r)
        assert r.all_text().startswith("Send a photo, clip or audio file")
        assert not DONE.search(r.all_text())
    assert sim.stats["chat"] == 0 and sim.stats["upload"] == 0


async def test_gui_talk_and_trailing_blank_lines_never_reach_the_user(tmp_path: Path) -> None:
    config = fast_sim_config(
        silent_edit_ratio=0.0, old_style_ratio=0.0, gui_phrase_ratio=1.0, temporary_issue_ratio=1.0
    )
    gui = re.compile(r"\b(click|drag|panel|button)\b|preview in|Export button", re.I)
    async with Simulator(config) as sim, core_for(sim, tmp_path) as (svc, _):
        for seed_text in (
            "make a 10-second video of a harbour at dawn",
            "add lo-fi music",
            "make the video shorter",
            'add a title "Harbour"',
        ):
            r = CollectingReplier()
            await svc.handle(msg(seed_text), r)
            for said in r.said:
                if said.kind in ("text", "stream"):
                    assert not gui.search(said.text), said.text
                    assert said.text == said.text.strip(), repr(said.text)
                    assert "temporary issue" not in said.text
            replies = [s for s in r.said if s.kind == "stream"]
            assert replies, r.said
            if "below" in replies[0].text:  # a view of the editor: the tracks follow
                assert r.said[-1].kind == "text" and r.said[-1].text.startswith("Timeline (")


async def test_a_reply_pointing_at_the_timeline_below_is_followed_by_it_after_an_error(
    tmp_path: Path,
) -> None:
    config = fast_sim_config(silent_edit_ratio=0.0, old_style_ratio=0.0, gui_phrase_ratio=1.0)
    async with Simulator(config) as sim, core_for(sim, tmp_path) as (svc, _):
        r = CollectingReplier()
        await _with_video(svc, r)
        pointed = 0
        for prompt in ("add lo-fi music", "add jazz music", "add piano music", "add rock music"):
            r.clear()
            sim.inject("late_error", count=1, endpoint="chat")
            await svc.handle(msg(prompt), r)
            reply, *rest = r.texts()
            assert any(t.startswith("⚠️ The video service reported a problem") for t in rest)
            if "below" in reply:  # the reply pointed at the editor: the tracks follow
                pointed += 1
                assert rest[-1].startswith("Timeline (2 tracks)")
        assert pointed  # (the simulator's edit replies vary; some point at the timeline)
