"""The store's project history on SQLite and on a real PostgreSQL server.

Each test runs once per back-end (``tests/stores.py``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from storage import PostgresStore, RenderRecord, SessionRecord, SQLiteStore, UserRecord
from storage.migrate import load_migrations
from tests.stores import FakeClock, backend, clock, server, store, target

__all__ = ["backend", "clock", "server", "store", "target"]  # fixtures used here

AnyStore = SQLiteStore | PostgresStore


def session(sid: str, chat: str = "chat1", uid: str = "u1") -> SessionRecord:
    return SessionRecord(platform="telegram", user_id=uid, chat_id=chat, session_id=sid)


def render(rid: str, sid: str) -> RenderRecord:
    return RenderRecord(
        render_id=rid, session_id=sid, platform="telegram", user_id="u1", chat_id="chat1"
    )


async def test_every_session_a_user_had_is_a_project_newest_first(
    store: AnyStore, clock: FakeClock
) -> None:
    await store.save_user(UserRecord(platform="telegram", user_id="u1", client_id="c1"))
    await store.save_user(UserRecord(platform="telegram", user_id="u2", client_id="c2"))
    for sid in ("s1", "s2", "s3"):
        clock.advance()
        await store.save_session(session(sid))
    clock.advance()
    await store.save_session(session("other", uid="u2"))

    projects = await store.list_projects("telegram", "u1")
    assert [p.session_id for p in projects] == ["s3", "s2", "s1"]
    assert [p.created_at for p in projects] == [1003.0, 1002.0, 1001.0]
    assert all(p.title is None and not p.has_video for p in projects)
    assert [p.session_id for p in await store.list_projects("telegram", "u1", limit=2)] == [
        "s3",
        "s2",
    ]
    assert [p.session_id for p in await store.list_projects("telegram", "u2")] == ["other"]
    assert await store.list_projects("discord", "u1") == []

    # Switching back to s1 (saving it as the chat's session again) makes it the most recent,
    # and keeps one row for it.
    clock.advance()
    await store.save_session(session("s1"))
    projects = await store.list_projects("telegram", "u1")
    assert [p.session_id for p in projects] == ["s1", "s3", "s2"]
    assert projects[0].created_at == 1001.0 and projects[0].updated_at == 1005.0


async def test_the_first_prompt_names_a_project_and_later_ones_do_not(
    store: AnyStore, clock: FakeClock
) -> None:
    await store.save_user(UserRecord(platform="telegram", user_id="u1", client_id="c1"))
    await store.save_session(session("s1"))
    await store.save_session(session("s2"))
    clock.advance()
    assert await store.title_project("telegram", "u1", "s1", "a city at night") is True
    clock.advance()
    assert await store.title_project("telegram", "u1", "s1", "add music") is False
    found = await store.get_project("telegram", "u1", "s1")
    assert found is not None
    assert found.title == "a city at night" and found.updated_at == 1002.0
    assert [p.session_id for p in await store.list_projects("telegram", "u1")] == ["s1", "s2"]
    assert await store.title_project("telegram", "u1", "nope", "x") is False
    assert await store.get_project("telegram", "u1", "nope") is None
    assert await store.get_project("telegram", "u2", "s1") is None  # another user's


async def test_a_project_has_a_video_once_a_render_completed_with_a_file(
    store: AnyStore, clock: FakeClock
) -> None:
    await store.save_user(UserRecord(platform="telegram", user_id="u1", client_id="c1"))
    await store.save_session(session("s1"))
    assert await store.last_video("s1") is None
    await store.add_render(render("r-failed", "s1"))
    await store.update_render("r-failed", status="failed", error="boom")
    await store.add_render(render("r-running", "s1"))
    await store.update_render("r-running", status="running", progress=40)
    assert await store.last_video("s1") is None
    assert not (await store.list_projects("telegram", "u1"))[0].has_video

    clock.advance()
    await store.add_render(render("r1", "s1"))
    await store.update_render("r1", status="completed", output_url="https://v/1.mp4")
    clock.advance()
    await store.add_render(render("r2", "s1"))
    await store.update_render("r2", status="completed", output_url="https://v/2.mp4")
    clock.advance()
    await store.add_render(render("r-other", "s2"))
    await store.update_render("r-other", status="completed", output_url="https://v/x.mp4")

    last = await store.last_video("s1")
    assert last is not None and last.render_id == "r2" and last.output_url == "https://v/2.mp4"
    project = await store.get_project("telegram", "u1", "s1")
    assert project is not None and project.has_video


async def test_the_migration_makes_existing_sessions_projects(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    before = [m for m in load_migrations("sqlite") if m.name < "0006"]
    with sqlite3.connect(path) as conn:
        for m in before:
            conn.executescript(m.sql)
        conn.execute(f"PRAGMA user_version = {len(before)}")
        conn.execute(
            "INSERT INTO users (platform, user_id, client_id, created_at, updated_at) "
            "VALUES ('telegram', 'u1', 'c1', 5, 5)"
        )
        conn.execute(
            "INSERT INTO sessions (platform, user_id, chat_id, session_id, created_at, "
            "updated_at) VALUES ('telegram', 'u1', 'chat1', 'old-s', 7, 9)"
        )
    async with SQLiteStore(path) as s:
        projects = await s.list_projects("telegram", "u1")
    assert [(p.session_id, p.chat_id, p.created_at, p.updated_at) for p in projects] == [
        ("old-s", "chat1", 7.0, 9.0)
    ]
