"""Languages: what the catalogue and the language detector cost, per message and at start.

Subjects: :func:`core.language.detect` (what a message from the terminal, a Telegram
user without a language code or a Discord mention goes through) and
:func:`core.router.route` with every language's phrases, on a corpus of chat
prompts and commands in the six languages (plus texts the detector must leave
alone); the detector's cost is put beside routing's, which every message pays.
Start-up: a fresh interpreter importing :mod:`core.i18n` and giving one text, vs
one importing what :mod:`core.i18n` itself needs (:mod:`core.files`, and with it the
HTTP client): the difference is the catalogue's and the detector's share of start-up
time and memory. Rounds alternate the subjects; medians are reported.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable

from bench.common import ROOT, Result, median, run_main
from core.language import detect
from core.router import route

NAME = "language"
ROUNDS = 7
REPEAT = 50
STARTS = 5

CORPUS = [
    "make a 10-second clip of a futuristic city at night",
    "add lo-fi background music",
    "export",
    "生成一段夜晚城市的视频",
    "导出",
    "haz un clip de 10 segundos de una ciudad futurista de noche",
    "añade música de fondo",
    "ayuda",
    "faça um clipe de 10 segundos de uma cidade futurista à noite",
    "baixar o vídeo",
    "сделай видео о ночном городе",
    "статус",
    "buat klip 10 detik tentang kota futuristik di malam hari",
    "cek saldo",
    "ok",
    "Urban Dreams",
    "a video about the export trade " * 4,
]

_START = """
import resource, sys, time
t0 = time.perf_counter()
if sys.argv[1] == "catalogue":
    from core.i18n import t
    t("help", "es")
else:
    import core.files
    import core.types
print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _per_text_us(fn: Callable[[str], object]) -> float:
    started = time.perf_counter()
    for _ in range(REPEAT):
        for text in CORPUS:
            fn(text)
    return (time.perf_counter() - started) / (REPEAT * len(CORPUS)) * 1e6


def _start(which: str) -> tuple[float, int]:
    out = subprocess.run(
        [sys.executable, "-c", _START, which], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), int(out[1])


async def run() -> Result:
    """Measure, interleaving subjects and baselines."""
    result = Result(NAME)
    detect_us: list[float] = []
    route_us: list[float] = []
    for n in range(ROUNDS):
        if n % 2 == 0:
            detect_us.append(_per_text_us(detect))
            route_us.append(_per_text_us(route))
        else:
            route_us.append(_per_text_us(route))
            detect_us.append(_per_text_us(detect))
    with_cat: list[tuple[float, int]] = []
    without: list[tuple[float, int]] = []
    for n in range(STARTS):
        pair = ("catalogue", "bare") if n % 2 == 0 else ("bare", "catalogue")
        for which in pair:
            (with_cat if which == "catalogue" else without).append(
                await asyncio.to_thread(_start, which)
            )
    start_ms = median([s for s, _ in with_cat]) * 1000
    bare_ms = median([s for s, _ in without]) * 1000
    rss_kb = median([float(r) for _, r in with_cat]) - median([float(r) for _, r in without])
    result.add(
        "detect(): per message", f"{median(detect_us):.1f} µs", "< 100 µs", median(detect_us) < 100
    )
    result.add("route(): per message, six languages", f"{median(route_us):.1f} µs")
    result.add("detect() / route()", f"{median(detect_us) / median(route_us):.1f}x")
    result.add(
        "catalogue + detector import, first text",
        f"{start_ms - bare_ms:.0f} ms",
        "< 200 ms",
        start_ms - bare_ms < 200,
    )
    result.add("catalogue + detector memory", f"{rss_kb:.0f} KB")
    result.data = {
        "detect_us": detect_us,
        "route_us": route_us,
        "start_with_catalogue_s": with_cat,
        "start_bare_s": without,
        "corpus": len(CORPUS),
    }
    json.dumps(result.data)  # fail here, not when writing, if something isn't JSON
    return result


def main() -> None:
    """Run the benchmark and write its results."""
    run_main(NAME, run)


if __name__ == "__main__":
    main()
