"""Shared helpers of the benchmarks: results files, statistics, a simulator subprocess.

Every benchmark module has ``async def run() -> Result`` and ``main()``; ``main``
runs it, prints its table and writes ``bench/results/<name>.json``. The result's
``rows`` are what ``python -m bench`` prints in the combined table.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import platform
import re
import resource
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    """One line of the combined table."""

    metric: str
    value: str
    target: str = ""
    verdict: str = ""  # "met", "MISSED" or "" (informational)


@dataclass
class Result:
    """What a benchmark reports: table rows plus every raw figure behind them."""

    name: str
    rows: list[Row] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def add(self, metric: str, value: str, target: str = "", ok: bool | None = None) -> None:
        """Add a table row; ``ok`` None means the row has no target."""
        verdict = "" if ok is None else ("met" if ok else "MISSED")
        self.rows.append(Row(metric, value, target, verdict))


def machine() -> dict[str, Any]:
    """The machine a result was measured on."""
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_result(result: Result, started: float) -> Path:
    """Write ``bench/results/<name>.json``; returns its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{result.name}.json"
    payload = {
        "name": result.name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.monotonic() - started, 1),
        "machine": machine(),
        "rows": [asdict(r) for r in result.rows],
        "data": result.data,
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def format_table(rows: Sequence[Row], *, title: str | None = None) -> str:
    """A plain-text (and Markdown-compatible) table of rows."""
    head = ("metric", "value", "target", "")
    cells = [head, *((r.metric, r.value, r.target, r.verdict) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    lines = []
    if title:
        lines.append(f"## {title}")
    for n, c in enumerate(cells):
        lines.append("| " + " | ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def run_main(name: str, run: Callable[[], Coroutine[Any, Any, Result]]) -> None:
    """The ``main()`` of a benchmark module: run, print, write JSON."""
    quiet_logs()
    started = time.monotonic()
    result = asyncio.run(run())
    assert result.name == name
    path = write_result(result, started)
    print(format_table(result.rows, title=name))
    print(f"-> {path.relative_to(ROOT)} ({time.monotonic() - started:.0f} s)", flush=True)


# -- statistics ----------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100), linear interpolation; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    """The median; NaN when empty."""
    return statistics.median(values) if values else float("nan")


def ratios(subject: Sequence[float], baseline: Sequence[float]) -> list[float]:
    """Per-round ratios subject / baseline (rounds were interleaved, so pairs share noise)."""
    return [s / b for s, b in zip(subject, baseline, strict=True) if b]


# -- process helpers ------------------------------------------------------------------------


def quiet_logs() -> None:
    """Benchmarks print tables, not log lines."""
    logging.basicConfig(level=logging.WARNING)
    for name in ("nemo", "httpx", "telegram", "aiohttp", "bots", "core"):
        logging.getLogger(name).setLevel(logging.ERROR)


def raise_nofile(wanted: int = 16384) -> int:
    """Raise the soft file-descriptor limit (1,000 streams need ~2,000 sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux: ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Resident set size of this process now."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds() -> float:
    """CPU time (user + system) of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


_SIM_LINE = re.compile(r"NemoVideo simulator on (http://\S+)")


@contextlib.asynccontextmanager
async def simulator_process(**config: Any) -> AsyncIterator[str]:
    """A NemoVideo simulator in a subprocess (so its CPU and memory are not the bot's).

    ``config`` are :class:`simulator.config.SimConfig` fields. Yields the base URL.
    """
    async with simulator_module("bench.simproc", config) as url:
        yield url


@contextlib.asynccontextmanager
async def simulator_module(module: str, config: dict[str, Any]) -> AsyncIterator[str]:
    """``python -m module '<config JSON>'``, a module that starts a simulator and prints
    its "NemoVideo simulator on URL" line; yields the URL, stops the process after."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        json.dumps(config),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        match = _SIM_LINE.search(line.decode())
        if match is None:
            raise RuntimeError(f"simulator did not start: {line!r}")
        yield match.group(1)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def fast_sim(**overrides: Any) -> dict[str, Any]:
    """Simulator settings with no think time and no random GUI talk (plain streamed text)."""
    config: dict[str, Any] = {
        "chunk_delay": 0.0,
        "heartbeat_interval": 0.01,
        "slow_step_seconds": 0.0,
        "gui_phrase_ratio": 0.0,
        "temporary_issue_ratio": 0.0,
        "old_style_ratio": 0.0,
        "silent_edit_ratio": 0.0,
        "initial_credits": 1_000_000,
        "record_requests": False,
        "render_seconds": 1.0,
    }
    config.update(overrides)
    return config
