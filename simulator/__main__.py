"""``python -m simulator [--host H] [--port P] [--seed N] ...``: run the simulator."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from simulator.config import RANDOM_FAULT_KINDS, SimConfig
from simulator.server import serve


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments and serve until interrupted."""
    p = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--render-seconds", type=float, default=SimConfig.render_seconds)
    p.add_argument("--chunk-delay", type=float, default=SimConfig.chunk_delay)
    p.add_argument("--heartbeat-interval", type=float, default=SimConfig.heartbeat_interval)
    p.add_argument("--slow-step-seconds", type=float, default=SimConfig.slow_step_seconds)
    p.add_argument("--silent-edit-ratio", type=float, default=SimConfig.silent_edit_ratio)
    p.add_argument("--old-style-ratio", type=float, default=SimConfig.old_style_ratio)
    p.add_argument(
        "--gui-phrase-ratio",
        type=float,
        default=SimConfig.gui_phrase_ratio,
        help="share of replies that talk about the web app's screen",
    )
    p.add_argument(
        "--temporary-issue-ratio",
        type=float,
        default=SimConfig.temporary_issue_ratio,
        help='share of replies ending "I encountered a temporary issue"',
    )
    p.add_argument("--initial-credits", type=int, default=SimConfig.initial_credits)
    p.add_argument("--fault-rate", type=float, default=0.0)
    p.add_argument(
        "--fault-kinds",
        default=",".join(RANDOM_FAULT_KINDS),
        help="comma-separated, for --fault-rate",
    )
    p.add_argument(
        "--video-size",
        default=f"{SimConfig.video_width}x{SimConfig.video_height}",
        help="WIDTHxHEIGHT of rendered MP4s (default %(default)s)",
    )
    p.add_argument(
        "--fixed-renders",
        action="store_true",
        help="every render is the same short preview clip instead of following its draft",
    )
    p.add_argument(
        "--link-ttl",
        type=float,
        default=None,
        metavar="SECONDS",
        help="render links stop working (403) this long after a status reply handed them out",
    )
    a = p.parse_args(argv)
    try:
        width, height = (int(n) for n in a.video_size.lower().split("x"))
    except ValueError:
        p.error(f"--video-size: {a.video_size!r} is not WIDTHxHEIGHT")
    config = SimConfig(
        seed=a.seed,
        render_seconds=a.render_seconds,
        chunk_delay=a.chunk_delay,
        heartbeat_interval=a.heartbeat_interval,
        slow_step_seconds=a.slow_step_seconds,
        silent_edit_ratio=a.silent_edit_ratio,
        old_style_ratio=a.old_style_ratio,
        gui_phrase_ratio=a.gui_phrase_ratio,
        temporary_issue_ratio=a.temporary_issue_ratio,
        initial_credits=a.initial_credits,
        fault_rate=a.fault_rate,
        fault_kinds=tuple(k for k in a.fault_kinds.split(",") if k),
        render_drafts=not a.fixed_renders,
        video_width=width,
        video_height=height,
        link_ttl_seconds=a.link_ttl,
    )
    serve(a.host, a.port, config)


if __name__ == "__main__":
    main()
