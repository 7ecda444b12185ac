"""``nemo-bot`` in a real pseudo-terminal, driven like a person at a keyboard.

The process is a session leader with the pty as its controlling terminal, so the
kernel's line discipline does what a terminal does: Ctrl-C (``\\x03``) becomes
SIGINT, Ctrl-D (``\\x04``) ends input, and closing the terminal sends SIGHUP.
Only the standard library (``pty``) is used.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import sys
import time
from pathlib import Path

__all__ = ["Terminal"]

NEMO_BOT = (sys.executable, "-m", "bots.cli")


class Terminal:
    """One ``nemo-bot`` process on a pty; ``output`` is everything it has shown so far."""

    def __init__(self, *args: str, env: dict[str, str], cwd: Path) -> None:
        argv = [*NEMO_BOT, *args]
        pid, fd = pty.fork()
        if pid == 0:  # the child: become nemo-bot (pty.fork made the pty our terminal)
            try:
                os.chdir(cwd)
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        self.pid = pid
        self.fd: int | None = fd
        self.output = b""
        self.returncode: int | None = None

    @property
    def text(self) -> str:
        """The output so far, decoded."""
        return self.output.decode("utf-8", "replace")

    def _read(self, timeout: float) -> bool:
        if self.fd is None:
            return False
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return False
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # EIO: the process closed its side
            chunk = b""
        if not chunk:
            return False
        self.output += chunk
        return True

    def expect(self, needle: str, *, within: float = 60.0, after: int = 0) -> int:
        """Wait until ``needle`` shows (past byte ``after``); its byte offset in ``output``."""
        wanted = needle.encode()
        deadline = time.monotonic() + within
        while True:
            at = self.output.find(wanted, after)
            if at >= 0:
                return at
            if time.monotonic() > deadline or (not self._read(0.2) and self.exited()):
                raise AssertionError(f"{needle!r} never showed; the screen:\n{self.text}")

    def send(self, keys: str) -> None:
        """Type ``keys`` (``\\x03`` is Ctrl-C, ``\\x04`` Ctrl-D)."""
        assert self.fd is not None
        os.write(self.fd, keys.encode())

    def exited(self) -> bool:
        """Whether the process has ended (reaping it if so)."""
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode is not None

    def wait(self, within: float = 30.0) -> int:
        """The exit code, reading output meanwhile; fails if it outlives ``within`` s."""
        deadline = time.monotonic() + within
        while not self.exited():
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"still running after {within} s; the screen:\n{self.text}")
            self._read(0.1)
        while self._read(0.05):
            pass
        assert self.returncode is not None
        return self.returncode

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the process."""
        os.kill(self.pid, sig)

    def hang_up(self) -> None:
        """Close the terminal (the kernel sends SIGHUP to the process)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def kill(self) -> None:
        """Kill the process if it still runs, and close the terminal."""
        if not self.exited():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.returncode = -9
        self.hang_up()
