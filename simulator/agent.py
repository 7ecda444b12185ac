"""One chat turn of the simulated agent, run as a background task.

The turn pushes SSE byte chunks into a queue that the HTTP handler drains. It keeps
running when the client disconnects (the real backend does too), so a client that
resends while a generation runs is caught (``stats["concurrent_duplicates"]``) and
charged twice, as it would be.
"""

from __future__ import annotations

import asyncio
import copy
import math
from collections import Counter
from dataclasses import dataclass

from simulator import sse
from simulator.config import SimConfig
from simulator.state import Change, apply_message, generate, is_ready, other_edit
from simulator.world import Session, User

_GUI_GENERATE = (
    " Preview in timeline to check it, then click the Export button to download your video.",
    " Open the timeline panel to review it, and click the Export button when you're ready.",
)
_GUI_EDIT = (
    " You can drag the clip on the timeline to fine-tune it.",
    " Open the timeline panel to see the change.",
    " Preview in timeline to hear how it sounds, then click the Export button.",
)
_TEMP_ISSUE = "\n\nI encountered a temporary issue"
_FALSE_CLAIM = "Done, I updated the timeline."


@dataclass
class Turn:
    """Everything one chat turn needs."""

    config: SimConfig
    session: Session
    user: User
    text: str
    fault: str | None
    stats: Counter[str]
    out: asyncio.Queue[bytes]
    preview_url: str
    error_variant: int = 0


def _cost(config: SimConfig, change: Change) -> int:
    if change.kind == "generate":
        return config.generation_cost
    return config.edit_cost if change.kind == "edit" else 0


def _decorate(turn: Turn, change: Change) -> str:
    rng, cfg = turn.session.rng, turn.config
    reply = change.reply
    if change.kind != "chat" and rng.random() < cfg.gui_phrase_ratio:
        reply += rng.choice(_GUI_GENERATE if change.kind == "generate" else _GUI_EDIT)
    if rng.random() < cfg.temporary_issue_ratio:
        reply += _TEMP_ISSUE + rng.choice(("", "."))
    return reply


async def run_turn(turn: Turn) -> None:
    """Play one turn into ``turn.out``; always ends with ``sse.END`` or ``sse.DROP``."""
    s, cfg, rng, put = turn.session, turn.config, turn.session.rng, turn.out.put_nowait
    loop = asyncio.get_running_loop()
    work = copy.deepcopy(s.draft)
    change = apply_message(work, turn.text, rng)
    if turn.fault == "silent_edit" and not change.changed:
        work = copy.deepcopy(s.draft)
        apply = other_edit if is_ready(work) else generate
        change = apply(work, turn.text, rng)
    cost = min(_cost(cfg, change), turn.user.available)
    turn.user.frozen += cost
    charged = False
    old = rng.random() < cfg.old_style_ratio
    silent = turn.fault == "silent_edit" or (
        turn.fault is None and change.kind == "edit" and rng.random() < cfg.silent_edit_ratio
    )
    events = sse.AdkEvents(rng)
    beats = 0

    async def beat(seconds: float) -> None:
        # One heartbeat now and one per interval until ``seconds`` have passed, on a fixed
        # schedule: how many there are depends on the settings only, never on how late a
        # busy machine wakes this task (a seed replays the same stream, heartbeats too).
        nonlocal beats
        interval = cfg.heartbeat_interval
        count = 1 + (math.ceil(seconds / interval - 1e-9) if interval > 0 else 0)
        start = loop.time()
        for i in range(count):
            if i:
                await asyncio.sleep(max(0.0, start + min(i * interval, seconds) - loop.time()))
            put(sse.heartbeat(beats, old))
            beats += 1

    turn.stats["chat_turns"] += 1
    try:
        if turn.fault == "heartbeat_only":
            await beat(cfg.heartbeat_only_seconds)
            put(sse.END)
            return
        if turn.fault in ("ignored", "false_claim"):
            # The agent "acts" but the draft stays as it was (seen with prompts it
            # did not understand): the client must not report a change.
            call_id = f"call_{rng.getrandbits(48):012x}"
            put(events.function_call(call_id, "edit_timeline", {"instruction": turn.text}))
            await beat(cfg.heartbeat_interval)
            put(events.function_response(call_id, "edit_timeline", {"status": "no_change"}, {}))
            if turn.fault == "false_claim":
                put(events.text(_FALSE_CLAIM, partial=False, turn_complete=True))
            put(sse.END)
            return
        if not old and rng.random() < cfg.thought_ratio:
            put(
                events.thought(
                    f"The user said {turn.text!r}. I should use {change.tool or 'chat'}."
                )
            )
        if change.changed:
            call_id = f"call_{rng.getrandbits(48):012x}"
            if not old:
                put(events.function_call(call_id, change.tool, change.args))
            slow = cfg.slow_step_seconds * (1.0 if change.kind == "generate" else 0.5)
            await beat(slow)
            if turn.fault == "stream_error":
                _error(turn, events)
                return
            s.draft = work
            s.draft_version += 1
            if change.kind == "generate":
                s.generated_media.append(
                    {
                        "id": f"gm_{rng.getrandbits(32):08x}",
                        "type": "video",
                        "prompt": turn.text,
                        "title": change.extra.get("title", ""),
                        "duration": change.args.get("duration", 10),
                        "url": turn.preview_url,
                    }
                )
            turn.user.frozen -= cost
            turn.user.total -= cost
            charged = True
            turn.stats["credits_spent"] += cost
            turn.stats["generations" if change.kind == "generate" else "edits"] += 1
            if not old:
                response = {"status": "success", "draft_version": s.draft_version}
                delta = {"draft_version": s.draft_version, "draft_updated": True}
                put(events.function_response(call_id, change.tool, response, delta))
        elif turn.fault == "stream_error":
            await beat(cfg.heartbeat_interval)
            _error(turn, events)
            return
        if silent:
            turn.stats["silent_edits"] += 1
            put(sse.END)
            return
        reply = _decorate(turn, change)
        chunks = sse.split_chunks(reply, rng)
        if turn.fault == "drop_stream":
            for chunk in chunks[: max(1, len(chunks) // 2)]:
                put(sse.old_text(chunk) if old else events.text(chunk, partial=True))
                await asyncio.sleep(cfg.chunk_delay)
            turn.stats["stream_drops"] += 1
            put(sse.DROP)
            return
        for chunk in chunks:
            put(sse.old_text(chunk) if old else events.text(chunk, partial=True))
            await asyncio.sleep(cfg.chunk_delay)
        if not old:
            done = rng.random() < cfg.turn_complete_ratio
            put(events.text(reply, partial=False, turn_complete=done))
        if turn.fault == "late_error":
            _error(turn, events)
            return
        put(sse.END)
    finally:
        put(sse.END)  # harmless after an earlier END/DROP; unblocks the handler on cancel
        if not charged:
            turn.user.frozen -= cost
        s.running[turn.text] -= 1
        if s.running[turn.text] <= 0:
            del s.running[turn.text]


def _error(turn: Turn, events: sse.AdkEvents) -> None:
    turn.stats["stream_errors"] += 1
    variant = turn.error_variant % 3
    put = turn.out.put_nowait
    if variant == 2:
        put(events.error("MODEL_ERROR", "The model failed to respond. Please try again."))
    else:
        put(sse.stream_error(variant))
    put(sse.END)
