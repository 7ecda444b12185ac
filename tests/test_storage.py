"""The store contract on SQLite and on a real PostgreSQL server, plus each one's specifics.

Tests that take ``store`` or ``target`` run once per back-end (``tests/stores.py``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import sqlite3
import stat
from pathlib import Path

import asyncpg
import pytest

import storage.postgres as postgres_mod
import storage.sqlite as sqlite_mod
from storage import (
    IntegrityError,
    PostgresStore,
    RenderRecord,
    SessionRecord,
    SQLiteStore,
    Store,
    StoreError,
    UserRecord,
    make_store,
)
from storage.migrate import DIALECTS, Migration, load_migrations
from tests.pgserver import PgServer
from tests.stores import FakeClock, backend, clock, raw_rows, server, store, target

__all__ = ["backend", "clock", "server", "store", "target"]  # fixtures used here

AnyStore = SQLiteStore | PostgresStore
SECRET = "tok-very-secret-123"
TABLES = {"users", "sessions", "renders"}
USERS_TABLE = "CREATE TABLE users (platform TEXT, user_id TEXT, token TEXT);"  # read at open


def user(uid: str = "u1", **kw: object) -> UserRecord:
    return UserRecord(platform="telegram", user_id=uid, client_id=f"c-{uid}", **kw)  # type: ignore[arg-type]


def session(uid: str = "u1", chat: str = "chat1", sid: str = "s1", **kw: object) -> SessionRecord:
    return SessionRecord(platform="telegram", user_id=uid, chat_id=chat, session_id=sid, **kw)  # type: ignore[arg-type]


def render(rid: str = "r1", **kw: object) -> RenderRecord:
    return RenderRecord(
        render_id=rid,
        session_id="s1",
        platform="telegram",
        user_id="u1",
        chat_id="chat1",
        **kw,  # type: ignore[arg-type]
    )


def raw(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection to inspect a database file from outside the store."""
    return sqlite3.connect(path)


def tables_of(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {r[0] for r in rows}


# -- protocol, lifecycle -------------------------------------------------------------


def test_stores_satisfy_protocol() -> None:
    stores: list[Store] = [SQLiteStore(":memory:"), PostgresStore("postgresql://h/db")]
    assert [type(s).__name__ for s in stores] == ["SQLiteStore", "PostgresStore"]


def test_make_store_picks_the_back_end_from_the_target(tmp_path: Path) -> None:
    for url in ("postgresql://u:pw@db.example:5432/bot", "postgres://u@db.example/bot"):
        picked = make_store(url)
        assert isinstance(picked, PostgresStore)
        assert "pw" not in repr(picked)
    assert isinstance(make_store(tmp_path / "x.db"), SQLiteStore)
    assert isinstance(make_store(str(tmp_path / "x.db")), SQLiteStore)
    assert isinstance(make_store("./postgresql-data.db"), SQLiteStore)


async def test_use_before_open_raises(target: Path | str) -> None:
    s = make_store(target)
    with pytest.raises(RuntimeError, match="not open"):
        await s.get_user("telegram", "u1")


async def test_open_and_close_are_idempotent(target: Path | str) -> None:
    s = make_store(target)
    await s.open()
    await s.open()
    await s.save_user(user())
    await s.close()
    await s.close()
    assert "closed" in repr(s)


# -- migrations ------------------------------------------------------------------------


def test_packaged_migrations_are_numbered_in_order_and_twinned() -> None:
    sets = {d: load_migrations(d) for d in DIALECTS}
    for migrations in sets.values():
        assert migrations[0].name == "0001_init.sql"
        assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
        for m in migrations:
            assert "BEGIN" not in m.sql.upper().split("--")[0]  # each runs in the store's own tx
    names = {d: [m.name for m in ms] for d, ms in sets.items()}
    assert names["sqlite"] == names["postgres"]  # the same steps under the same numbers


async def test_both_back_ends_have_the_same_tables_and_columns(tmp_path: Path, pg_url: str) -> None:
    async with SQLiteStore(tmp_path / "bot.db"):
        pass
    with raw(tmp_path / "bot.db") as conn:
        lite = {
            (t, c[1])
            for t in tables_of(conn)
            for c in conn.execute(f"PRAGMA table_info({t})").fetchall()
        }
    async with PostgresStore(pg_url):
        pass
    rows = await raw_rows(
        pg_url,
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name <> 'schema_version'",
    )
    pg = {(str(t), str(c)) for t, c in rows}
    assert pg - {("renders", "seq")} == lite  # seq stands in for SQLite's rowid
    assert {t for t, _ in lite} >= TABLES | {"session_leases", "inbound_updates", "counters"}


async def test_fresh_db_gets_all_tables_and_user_version(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    async with SQLiteStore(path):
        pass
    with raw(path) as conn:
        assert tables_of(conn) >= TABLES
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(load_migrations())
        indexes = {r[1] for r in conn.execute("PRAGMA index_list(renders)")}
        assert "renders_delivered_at" in indexes


async def test_reopen_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    for _ in range(3):
        async with SQLiteStore(path) as s:
            await s.save_user(user())
    with raw(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(load_migrations())
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 1


async def test_migrations_apply_in_order_and_each_is_atomic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bot.db"
    first = [
        Migration(1, "0001_a.sql", f"CREATE TABLE a (x INTEGER); {USERS_TABLE}"),
        Migration(2, "0002_b.sql", "ALTER TABLE a ADD COLUMN y TEXT; CREATE TABLE b (z);"),
    ]
    monkeypatch.setattr(sqlite_mod, "load_migrations", lambda: first)
    async with SQLiteStore(path):
        pass
    with raw(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        assert {"a", "b"} <= tables_of(conn)

    broken = Migration(3, "0003_c.sql", "CREATE TABLE c (w); INSERT INTO nowhere VALUES (1);")
    monkeypatch.setattr(sqlite_mod, "load_migrations", lambda: [*first, broken])
    with pytest.raises(sqlite3.OperationalError, match="nowhere"):
        await SQLiteStore(path).open()
    with raw(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        assert "c" not in tables_of(conn)  # the failed step rolled back entirely

    fixed = Migration(3, "0003_c.sql", "CREATE TABLE c (w);")
    monkeypatch.setattr(sqlite_mod, "load_migrations", lambda: [*first, fixed])
    async with SQLiteStore(path):
        pass
    with raw(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
        assert "c" in tables_of(conn)


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    async with SQLiteStore(path):
        pass
    with raw(path) as conn:
        conn.execute("PRAGMA user_version = 999")
    with pytest.raises(RuntimeError, match="newer"):
        await SQLiteStore(path).open()


async def test_postgres_migrations_record_versions_and_each_is_atomic(
    pg_server: PgServer, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with PostgresStore(pg_url):
        pass
    versions = await raw_rows(pg_url, "SELECT version FROM schema_version ORDER BY version")
    assert [v for (v,) in versions] == [m.version for m in load_migrations("postgres")]

    fresh = await pg_server.create_database()
    first = [
        Migration(1, "0001_a.sql", f"CREATE TABLE a (x INTEGER); {USERS_TABLE}"),
        Migration(2, "0002_b.sql", "ALTER TABLE a ADD COLUMN y TEXT; CREATE TABLE b (z INT);"),
    ]
    monkeypatch.setattr(postgres_mod, "load_migrations", lambda: first)
    async with PostgresStore(fresh):
        pass
    broken = Migration(3, "0003_c.sql", "CREATE TABLE c (w INT); INSERT INTO nowhere VALUES (1);")
    monkeypatch.setattr(postgres_mod, "load_migrations", lambda: [*first, broken])
    with pytest.raises(StoreError, match=r"0003_c\.sql failed: .*nowhere") as info:
        await PostgresStore(fresh).open()
    assert isinstance(info.value.__cause__, asyncpg.UndefinedTableError)
    assert await raw_rows(fresh, "SELECT max(version) FROM schema_version") == [(2,)]
    assert await raw_rows(fresh, "SELECT to_regclass('c') IS NULL") == [(True,)]

    await raw_rows(fresh, "INSERT INTO schema_version VALUES (999, 'x', 0)")
    with pytest.raises(StoreError, match="newer"):
        await PostgresStore(fresh).open()


async def test_replicas_starting_together_migrate_once(pg_url: str) -> None:
    stores = [PostgresStore(pg_url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        rows = await raw_rows(pg_url, "SELECT version FROM schema_version ORDER BY version")
        assert [v for (v,) in rows] == [m.version for m in load_migrations("postgres")]
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_processes_opening_one_new_sqlite_file_together_migrate_once(
    tmp_path: Path,
) -> None:
    # Shard processes on one host share the file: the first start of each races the others.
    for attempt in range(5):
        path = tmp_path / f"bot-{attempt}.db"
        stores = [SQLiteStore(path) for _ in range(4)]
        await asyncio.gather(*(s.open() for s in stores))
        try:
            await stores[0].save_user(user())
            with raw(path) as conn:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                assert version == len(load_migrations())
                assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 1
        finally:
            await asyncio.gather(*(s.close() for s in stores))


async def test_unreachable_postgres_is_one_clear_line_without_the_password() -> None:
    with socket.socket() as s:  # bound, never listening: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        url = f"postgresql://bot:hunter2@127.0.0.1:{port}/bot"
        with pytest.raises(StoreError) as info:
            await PostgresStore(url).open()
    text = str(info.value)
    assert "\n" not in text and "hunter2" not in text
    assert f"postgresql://bot@127.0.0.1:{port}/bot" in text

    with pytest.raises(StoreError, match=re.escape("cannot open postgresql://bot@db.internal/bot")):
        await PostgresStore("postgresql://bot:hunter2@db.internal:notaport/bot").open()


# -- file, pragmas -----------------------------------------------------------------------


async def test_file_created_0600_with_parent_dirs(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "deeper" / "bot.db"
    async with SQLiteStore(path) as s:
        await s.save_user(user(token=SECRET))
        for p in (path, path.with_name("bot.db-wal"), path.with_name("bot.db-shm")):
            if p.exists():
                assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert path.parent.is_dir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_wal_and_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    async with SQLiteStore(path) as s:  # per-connection settings: ask the store's connection
        assert (await s._fetchone("PRAGMA journal_mode", ()))[0] == "wal"  # type: ignore[index]
        assert (await s._fetchone("PRAGMA foreign_keys", ()))[0] == 1  # type: ignore[index]
    with raw(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent


async def test_a_lock_held_by_another_process_is_waited_for_and_the_loop_runs_on(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bot.db"
    async with SQLiteStore(path) as s:
        with raw(path) as other:  # another process (a shard, an admin command) writing
            other.isolation_level = None
            other.execute("BEGIN IMMEDIATE")
            write = asyncio.create_task(s.save_user(user()))
            reads = []
            for _ in range(10):  # the bot keeps answering while its write waits
                await asyncio.sleep(0.02)
                reads.append(await s.get_user("telegram", "nobody"))
            assert not write.done() and reads == [None] * 10
            other.execute("COMMIT")
            await asyncio.wait_for(write, 5)
        assert await s.get_user("telegram", "u1") is not None


async def test_a_lock_held_past_the_busy_time_out_fails_the_statement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_mod, "BUSY_TIMEOUT_MS", 200)
    path = tmp_path / "bot.db"
    async with SQLiteStore(path) as s:
        with raw(path) as other:
            other.isolation_level = None
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                await s.save_user(user())
            other.execute("ROLLBACK")
        await s.save_user(user())  # nothing was left half-done
        assert await s.get_user("telegram", "u1") is not None


async def test_session_requires_user(store: AnyStore) -> None:
    with pytest.raises(IntegrityError):
        await store.save_session(session(uid="nobody"))


async def test_persistence_across_close_and_reopen(target: Path | str) -> None:
    async with make_store(target) as s:
        await s.save_user(user(token=SECRET, language="de", token_expires_at=5.5))
        await s.save_session(session(task_id="t1"))
        await s.save_draft("telegram", "u1", "chat1", '{"d": 1}')
        await s.add_render(render(thread_id="th", reply_to="42", summary="cat video"))
        await s.update_render("r1", status="completed", output_url="https://x/v.mp4")
        assert await s.claim_delivery("r1", owner="me")
        await s.mark_delivered("r1", owner="me")
    async with make_store(target) as s:
        u = await s.get_user("telegram", "u1")
        assert u is not None and u.token == SECRET and u.language == "de"
        assert u.token_expires_at == 5.5
        sess = await s.get_session("telegram", "u1", "chat1")
        assert sess is not None and sess.task_id == "t1" and sess.draft_json == '{"d": 1}'
        r = await s.get_render("r1")
        assert r is not None and r.status == "completed" and r.summary == "cat video"
        assert r.thread_id == "th" and r.reply_to == "42" and r.delivered_at is not None
        assert not await s.claim_delivery("r1", owner="me")


# -- users ---------------------------------------------------------------------------------


async def test_user_upsert(store: AnyStore, clock: FakeClock) -> None:
    assert await store.get_user("telegram", "u1") is None
    u = user(token=SECRET, backend_user_id="b1", token_minted_at=900.0)
    await store.save_user(u)
    assert (u.created_at, u.updated_at) == (1000.0, 1000.0)

    clock.advance(10)
    await store.save_user(user(token="new", language="fr"))
    got = await store.get_user("telegram", "u1")
    assert got is not None
    assert got.token == "new" and got.language == "fr"
    assert got.backend_user_id is None  # a save replaces every field
    assert (got.created_at, got.updated_at) == (1000.0, 1010.0)
    assert await store.get_user("discord", "u1") is None


def _newcomer(client_id: str, **kw: object) -> UserRecord:
    return UserRecord(platform="telegram", user_id="u1", client_id=client_id, **kw)  # type: ignore[arg-type]


async def test_adding_a_user_twice_keeps_the_first(store: AnyStore, clock: FakeClock) -> None:
    first = await store.add_user(_newcomer("first", language="es"))
    assert first.client_id == "first" and first.created_at == 1000.0
    clock.advance(5)
    again = await store.add_user(_newcomer("second"))
    assert again.client_id == "first" and again.language == "es" and again.created_at == 1000.0
    got = await store.get_user("telegram", "u1")
    assert got is not None and got.client_id == "first"


async def test_first_contacts_at_once_through_two_connections_keep_one_client_id(
    target: Path | str, clock: FakeClock
) -> None:
    async with make_store(target, clock=clock) as one, make_store(target, clock=clock) as two:
        added = await asyncio.gather(
            *(s.add_user(_newcomer(f"c{i}")) for i, s in enumerate([one, two] * 4))
        )
        assert len({u.client_id for u in added}) == 1
        stored = await one.get_user("telegram", "u1")
        assert stored is not None and stored.client_id == added[0].client_id


async def test_user_token_never_in_repr_or_logs(
    store: AnyStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await store.save_user(user(token=SECRET))
    got = await store.get_user("telegram", "u1")
    await store.save_draft("telegram", "u1", "missing", "{}")
    await store.update_render("missing", status="failed")
    assert SECRET not in repr(got)
    assert SECRET not in caplog.text


# -- sessions --------------------------------------------------------------------------------


async def test_session_upsert_and_created_at(store: AnyStore, clock: FakeClock) -> None:
    await store.save_user(user())
    await store.save_session(session(task_id="t1", draft_json="{}"))
    clock.advance(5)
    await store.save_session(session(task_id="t2"))
    got = await store.get_session("telegram", "u1", "chat1")
    assert got is not None
    assert got.task_id == "t2" and got.draft_json is None
    assert (got.created_at, got.updated_at) == (1000.0, 1005.0)  # same backend session

    clock.advance(5)
    s2 = session(sid="s2")
    await store.save_session(s2)
    assert (s2.created_at, s2.updated_at) == (1010.0, 1010.0)  # a new backend session
    assert await store.get_session("telegram", "u1", "other-chat") is None


async def test_save_draft(store: AnyStore, clock: FakeClock) -> None:
    await store.save_user(user())
    await store.save_session(session(task_id="t1"))
    clock.advance(3)
    await store.save_draft("telegram", "u1", "chat1", '{"tracks": []}')
    got = await store.get_session("telegram", "u1", "chat1")
    assert got is not None
    assert got.draft_json == '{"tracks": []}' and got.task_id == "t1"
    assert got.updated_at == 1003.0
    await store.save_draft("telegram", "u1", "no-such-chat", "{}")  # no-op
    assert await store.get_session("telegram", "u1", "no-such-chat") is None


# -- renders ---------------------------------------------------------------------------------


async def test_render_lifecycle(store: AnyStore, clock: FakeClock) -> None:
    assert await store.get_render("r1") is None
    await store.add_render(render(ref_extra='{"k": 1}'))
    with pytest.raises(IntegrityError):
        await store.add_render(render())

    got = await store.get_render("r1")
    assert got is not None
    assert (got.status, got.progress, got.attempts) == ("pending", 0, 0)
    assert got.completed_at is None and got.delivered_at is None

    clock.advance()
    await store.update_render("r1", status="running", progress=40, attempts=1)
    await store.update_render("r1", progress=60)  # others untouched
    got = await store.get_render("r1")
    assert got is not None
    assert (got.status, got.progress, got.attempts) == ("running", 60, 1)
    assert got.completed_at is None and got.updated_at == 1001.0

    clock.advance()
    await store.update_render("r1", status="failed", error="backend 500")
    got = await store.get_render("r1")
    assert got is not None and got.completed_at == 1002.0 and got.error == "backend 500"

    clock.advance()
    await store.update_render("r1", status="failed")  # same terminal status: time kept
    got = await store.get_render("r1")
    assert got is not None and got.completed_at == 1002.0

    clock.advance()
    await store.update_render("r1", status="running", attempts=2)  # retried
    got = await store.get_render("r1")
    assert got is not None and got.completed_at is None

    clock.advance()
    await store.update_render("r1", status="completed", progress=100, output_url="https://v")
    got = await store.get_render("r1")
    assert got is not None
    assert got.status == "completed" and got.output_url == "https://v"
    assert got.completed_at == 1005.0 and got.error == "backend 500" and got.attempts == 2
    assert got.ref_extra == '{"k": 1}'

    await store.update_render("nope", status="completed")  # unknown id: no-op
    assert await store.get_render("nope") is None


async def test_undelivered_claim_and_release(store: AnyStore, clock: FakeClock) -> None:
    for rid in ("r3", "r1", "r2"):  # creation order, not id order
        await store.add_render(render(rid))
        clock.advance()
    assert [r.render_id for r in await store.undelivered_renders()] == ["r3", "r1", "r2"]

    assert await store.claim_delivery("r1", owner="a")
    assert not await store.claim_delivery("r1", owner="b")
    assert not await store.claim_delivery("missing", owner="a")
    got = await store.get_render("r1")
    assert got is not None and got.claimed_at == 1003.0 and got.delivered_at is None

    await store.release_delivery("r1", owner="b")  # not b's claim: nothing happens
    assert not await store.claim_delivery("r1", owner="b")
    await store.release_delivery("r1", owner="a")
    await store.release_delivery("missing", owner="a")
    got = await store.get_render("r1")
    assert got is not None and got.claimed_at is None and got.delivered_at is None
    assert await store.claim_delivery("r1", owner="b")
    await store.mark_delivered("r1", owner="a")  # not a's claim: not marked
    assert (await store.get_render("r1")).delivered_at is None  # type: ignore[union-attr]
    await store.mark_delivered("r1", owner="b")
    got = await store.get_render("r1")
    assert got is not None and got.delivered_at == 1003.0
    assert [r.render_id for r in await store.undelivered_renders()] == ["r3", "r2"]
    assert not await store.claim_delivery("r1", owner="b", lease=0.0)  # delivered: never again
    await store.release_delivery("r1", owner="b")
    assert (await store.get_render("r1")).delivered_at == 1003.0  # type: ignore[union-attr]


async def test_a_claim_expires_after_its_lease_unless_its_owner_renews_it(
    store: AnyStore, clock: FakeClock
) -> None:
    """A process killed mid-send leaves a claim; once the lease runs out, another delivers."""
    await store.add_render(render())
    assert await store.claim_delivery("r1", owner="a", lease=60.0)
    clock.advance(59)
    assert not await store.claim_delivery("r1", owner="b", lease=60.0)
    assert await store.claim_delivery("r1", owner="a", lease=60.0)  # renewed
    clock.advance(59)
    assert not await store.claim_delivery("r1", owner="b", lease=60.0)
    clock.advance(1)
    assert await store.claim_delivery("r1", owner="b", lease=60.0)


async def test_claim_delivery_exactly_once_under_50_claimers(target: Path | str) -> None:
    async with make_store(target) as a, make_store(target) as b:  # two stores, one database
        await a.add_render(render())
        results = await asyncio.gather(
            *((a, b)[i % 2].claim_delivery("r1", owner=f"o{i}") for i in range(50))
        )
        assert results.count(True) == 1
        winner = (await a.get_render("r1")).claimed_by  # type: ignore[union-attr]
        assert winner is not None
        await a.release_delivery("r1", owner=winner)
        again = await asyncio.gather(*(a.claim_delivery("r1", owner=f"p{i}") for i in range(50)))
        assert again.count(True) == 1


async def test_200_concurrent_writers(target: Path | str) -> None:
    async with make_store(target) as s:

        async def work(i: int) -> None:
            uid = f"u{i}"
            await s.save_user(user(uid, token=f"t{i}"))
            await s.save_session(session(uid=uid, sid=f"s{i}"))
            await s.save_draft("telegram", uid, "chat1", f'{{"i": {i}}}')
            await s.add_render(render(f"r{i}"))
            await s.update_render(f"r{i}", status="completed")

        await asyncio.gather(*(work(i) for i in range(200)))
        for i in range(200):
            u = await s.get_user("telegram", f"u{i}")
            assert u is not None and u.token == f"t{i}"
            sess = await s.get_session("telegram", f"u{i}", "chat1")
            assert sess is not None and sess.session_id == f"s{i}"
            assert sess.draft_json == f'{{"i": {i}}}'
        assert len(await s.undelivered_renders()) == 200
