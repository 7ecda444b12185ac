"""``python -m bench [NAME ...]``: run the benchmarks, print one combined table.

Names: core, concurrency, export, crowd, storage, language, discord,
replicas, limits (default: all).
Each runs in a fresh subprocess (so one benchmark's memory and threads do not leak into
the next) and writes ``bench/results/<name>.json``. ``python -m bench --table`` only prints
the table of the results already on disk (Markdown, as pasted into README.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from bench.common import RESULTS, ROOT, Row, format_table, machine

MODULES = {
    "core": "bench.core_overhead",
    "concurrency": "bench.concurrency",
    "export": "bench.export_delay",
    "crowd": "bench.crowd",
    "storage": "bench.storage",
    "language": "bench.language",
    "discord": "bench.discord_shards",
    "replicas": "bench.replicas",
    "limits": "bench.limits",
}


def combined(names: list[str]) -> str:
    """The combined table of the results on disk for ``names``."""
    rows: list[Row] = []
    when = ""
    for name in names:
        path = RESULTS / f"{name}.json"
        if not path.exists():
            rows.append(Row(f"{name}: no results", "", "", ""))
            continue
        data = json.loads(path.read_text())
        when = max(when, data["when"])
        rows += [
            Row(f"{name}: {r['metric'].strip()}", r["value"], r["target"], r["verdict"])
            for r in data["rows"]
        ]
    m = machine()
    head = f"{m['nproc']} cores, {m['cpu']}, Python {m['python']}; results of {when}"
    return head + "\n\n" + format_table(rows)


def main(argv: list[str]) -> int:
    """Run the named benchmarks (all by default); returns the exit status."""
    if argv[:1] == ["--table"]:
        print(combined(argv[1:] or list(MODULES)))
        return 0
    unknown = [a for a in argv if a not in MODULES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(MODULES)}")
        return 2
    names = argv or list(MODULES)
    started = time.monotonic()
    failed = []
    for name in names:
        print(f"== {name}", flush=True)
        code = subprocess.call([sys.executable, "-W", "ignore", "-m", MODULES[name]], cwd=ROOT)
        if code:
            failed.append(name)
    print()
    print(combined(names))
    print(f"\n{len(names)} benchmark(s) in {time.monotonic() - started:.0f} s", end="")
    print(f"; FAILED: {', '.join(failed)}" if failed else "")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
