"""Simulator settings, fault kinds and endpoint names.

Everything here is plain data; nothing imports from ``core/``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

#: Endpoint names used by :meth:`simulator.server.Simulator.inject` and in ``stats``.
ENDPOINTS: tuple[str, ...] = (
    "token",
    "session",
    "chat",
    "upload",
    "credits",
    "state",
    "render",
    "render_status",
    "cancel",
)

_AUTHED = ENDPOINTS[1:]
_SESSIONED = ("chat", "upload", "state")
_ANY = ENDPOINTS

#: Fault kind -> endpoints where it can fire. ``inject(kind, endpoint=None)`` fires on the
#: next call to any of these.
FAULT_ENDPOINTS: dict[str, tuple[str, ...]] = {
    "token_expired": _AUTHED,  # code 1001, and the token really stops working
    "token_invalid_1010": _AUTHED,  # code 1010, token stops working
    "http_401": _AUTHED,  # HTTP 401, token stops working
    "session_lost": _SESSIONED,  # code 1002, the session is really deleted
    "no_credits": ("chat",),  # code 2001 (balance untouched)
    "unsupported_file": ("upload",),  # code 4001
    "file_too_large": ("upload",),  # code 4002
    "client_id_missing": ("token",),  # HTTP 400
    "export_blocked": ("render",),  # HTTP 402
    "rate_limit": _ANY,  # HTTP 429, alternately with and without Retry-After
    "server_error": _ANY,  # HTTP 500 / 503 alternately
    "drop_stream": ("chat",),  # connection cut mid-stream after partial text
    "stream_error": ("chat",),  # data: {"error": ...} (or broken JSON) under HTTP 200
    "heartbeat_only": ("chat",),  # heartbeats only, for heartbeat_only_seconds, then close
    "silent_edit": ("chat",),  # no text at all, but the draft changes
    "ignored": ("chat",),  # a tool call that changes nothing, then no text at all
    "false_claim": ("chat",),  # "Done, I updated the timeline." but the draft is untouched
    "late_error": ("chat",),  # the turn works and says so, then an error event follows
    "duplicate_render_id": ("render",),  # duplicate-id error even for a fresh id
    "render_failed": ("render",),  # the submitted render ends in status "failed"
    # The call takes effect (files stored / render started) but its answer comes only
    # after ``late_answer_seconds``: a client killed meanwhile never learns the outcome.
    "late_answer": ("upload", "render"),
    # The upload is held ``late_answer_seconds`` before the backend takes it; a client
    # that went away meanwhile leaves nothing behind.
    "upload_stalls": ("upload",),
    # The export is held ``late_answer_seconds`` before the backend takes it (until then
    # its status is "not found"), then started and answered.
    "render_stalls": ("render",),
}

#: All fault kinds accepted by ``inject``.
FAULT_KINDS: tuple[str, ...] = tuple(FAULT_ENDPOINTS)

#: Faults that only slow a call down: left out of the random fault mode by default
#: (they are for tests that need a call in flight for a while).
SLOW_FAULTS: tuple[str, ...] = ("late_answer", "upload_stalls", "render_stalls")

#: The random fault mode's default kinds.
RANDOM_FAULT_KINDS: tuple[str, ...] = tuple(k for k in FAULT_KINDS if k not in SLOW_FAULTS)

RenderSeconds = float | Callable[[random.Random], float]


@dataclass
class SimConfig:
    """Knobs of the simulator. Every field has a default usable for demos.

    Times are in seconds. Ratios are probabilities drawn from seeded RNGs, so a run is
    reproducible under the same ``seed`` (per-session RNGs keep concurrent sessions from
    disturbing each other).
    """

    seed: int = 0
    # --- chat stream ---
    chunk_delay: float = 0.02  # pause between partial text chunks
    heartbeat_interval: float = 0.5  # pause between heartbeats during slow steps
    slow_step_seconds: float = 1.0  # heartbeat period of a generation (edits: half)
    heartbeat_only_seconds: float = 2.0  # length of the "heartbeat_only" fault stream
    silent_edit_ratio: float = 0.3  # share of edits that close with no text at all
    gui_phrase_ratio: float = 0.4  # share of replies containing GUI talk
    temporary_issue_ratio: float = 0.1  # share of replies ending "I encountered a temporary issue"
    thought_ratio: float = 0.3  # share of turns with a thought part (clients must skip it)
    old_style_ratio: float = 0.1  # share of turns using {"type": "text"} events
    turn_complete_ratio: float = 0.5  # share of final events that carry turnComplete
    # --- credits ---
    initial_credits: int = 100
    generation_cost: int = 5
    edit_cost: int = 1
    # --- auth ---
    token_ttl_seconds: float = 7 * 24 * 3600.0
    mint_limit_per_hour: int | None = None  # per client IP; None = unlimited
    # --- uploads ---
    max_upload_bytes: int = 200 * 1024 * 1024
    probe_uploads: bool = True  # read duration/size of uploads with ffmpeg
    # --- render ---
    render_seconds: RenderSeconds = 6.0  # float, or callable(rng) -> seconds
    render_seconds_range: tuple[float, float] | None = None  # overrides render_seconds
    # Each render's MP4 follows its draft: length, text tracks drawn at their times,
    # video titles, music (made once per content, cached). False: every render is the
    # fixed preview clip.
    render_drafts: bool = True
    render_progress: bool = True  # False: status replies carry no "progress" (as some do)
    video_seconds: float = 2.0  # length of the preview clip
    video_width: int = 1920  # size of every MP4 (a portrait draft swaps the two)
    video_height: int = 1080
    # A finished render's link stops working (HTTP 403, like an expired signed URL) this
    # long after a status reply handed it out; every status reply hands out a fresh one.
    # None: links never expire (Simulator.expire_links() still ends the ones handed out).
    link_ttl_seconds: float | None = None
    # --- rate limits / errors ---
    retry_after_seconds: int = 1  # value of the Retry-After header on 429
    late_answer_seconds: float = 30.0  # delay of the late_answer / *_stalls faults
    # --- random fault mode ---
    fault_rate: float = 0.0  # chance that any API call gets a random fault
    fault_kinds: tuple[str, ...] = field(default_factory=lambda: RANDOM_FAULT_KINDS)
    # --- bookkeeping ---
    record_requests: bool = True
    max_recorded_requests: int = 10_000

    def __post_init__(self) -> None:
        unknown = [k for k in self.fault_kinds if k not in FAULT_ENDPOINTS]
        if unknown:
            raise ValueError(f"unknown fault kinds: {unknown}")
