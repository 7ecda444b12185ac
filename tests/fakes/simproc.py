"""``nemo-bot sim`` as its own process, for tests that run the CLI as a subprocess."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

__all__ = ["free_port", "sim_process"]

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port nobody listens on right now (127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def sim_process(*args: str, program: Sequence[str] = ("bots.cli", "sim")) -> Iterator[str]:
    """Run ``nemo-bot sim --port P *args`` until the block ends; yields its URL.

    ``program=("simulator",)`` runs ``python -m simulator`` instead, which takes every
    knob of the simulator's config (``--silent-edit-ratio``...).
    """
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", *program, "--port", str(port), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                httpx.get(f"{url}/_sim/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("simulator did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
