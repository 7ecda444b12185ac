"""Helpers for tests that run ``nemo-bot`` as a real process (kill -9, SIGTERM, restarts).

The fakes (simulator, fake Bot API) run inside the test's event loop on 127.0.0.1;
the bot runs as ``python -m bots.cli ...`` in its own process, with a clean
environment (no NEMO_/TELEGRAM_/DISCORD_ variables leak in from the caller) and a
scratch working directory (no ``.env`` is picked up by accident).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["BotProcess", "bot_env", "db_rows", "integrity", "wait_until"]

NEMO_BOT = (sys.executable, "-m", "bots.cli")


def bot_env(**values: object) -> dict[str, str]:
    """The caller's environment minus every bot setting, plus ``values``."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("NEMO_", "TELEGRAM_", "DISCORD_"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in values.items()})
    return env


class BotProcess:
    """``nemo-bot <args>`` as an asyncio subprocess whose output is collected as it comes."""

    def __init__(self, *args: str, env: dict[str, str], cwd: Path) -> None:
        self.args = args
        self.env = env
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None
        self.stdout = ""
        self.stderr = ""
        self._readers: list[asyncio.Task[None]] = []

    async def start(self) -> BotProcess:
        self.proc = await asyncio.create_subprocess_exec(
            *NEMO_BOT,
            *self.args,
            env=self.env,
            cwd=self.cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            asyncio.create_task(self._pump(self.proc.stdout, "stdout")),
            asyncio.create_task(self._pump(self.proc.stderr, "stderr")),
        ]
        return self

    async def _pump(self, stream: asyncio.StreamReader, name: str) -> None:
        while chunk := await stream.read(4096):
            setattr(self, name, getattr(self, name) + chunk.decode("utf-8", "replace"))

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, within: float = 30.0) -> int:
        """The exit code (killing the process if it outlives ``within`` s)."""
        assert self.proc is not None
        try:
            code = await asyncio.wait_for(self.proc.wait(), within)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError(
                f"nemo-bot {' '.join(self.args)} did not exit within {within} s\n{self.stderr}"
            ) from None
        await asyncio.gather(*self._readers, return_exceptions=True)
        return code

    async def __aenter__(self) -> BotProcess:
        return self if self.proc is not None else await self.start()

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)


async def wait_until(
    predicate: Callable[[], Any], *, within: float = 20.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll ``predicate`` (sync) until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what or predicate}")
        await asyncio.sleep(interval)


def db_rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows from the bot's SQLite file, read through a separate read-only connection."""
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return list(conn.execute(sql, params))
    except sqlite3.OperationalError:
        return []  # no tables yet (the bot is still migrating)
    finally:
        conn.close()


def integrity(path: Path) -> str:
    """``PRAGMA integrity_check`` of the database file ("ok" when healthy)."""
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()
