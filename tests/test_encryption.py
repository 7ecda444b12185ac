"""Backend tokens at rest: Fernet encryption with NEMO_SECRET_KEY, rotation, and refusals.

Every store test runs on SQLite and on a real PostgreSQL server and reads the raw
``users`` table to prove no token is stored in the clear.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from core.config import Settings, SettingsError, load_settings
from storage import StoreError, UserRecord, make_store
from storage.secrets import PREFIX, SecretKeyError, generate_key
from tests.stores import backend, clock, raw_rows, server, target
from tests.test_cli import run_cli, sim_url

__all__ = ["backend", "clock", "server", "sim_url", "target"]  # fixtures used here

TOKEN = "nmv-token-4f1c9e2b7d"
KEY_A, KEY_B = generate_key(), generate_key()


def user(uid: str = "u1", token: str = TOKEN) -> UserRecord:
    return UserRecord(platform="telegram", user_id=uid, client_id=f"c-{uid}", token=token)


async def stored_tokens(target: Path | str) -> list[str]:
    rows = await raw_rows(target, "SELECT token FROM users ORDER BY user_id")
    return [str(t) for (t,) in rows]


async def test_the_raw_table_holds_no_token_and_the_store_reads_it_back(
    target: Path | str,
) -> None:
    async with make_store(target, secret_key=KEY_A) as s:
        await s.save_user(user("u1"))
        await s.save_user(user("u2", token=TOKEN + "-2"))
        got = await s.get_user("telegram", "u1")
        assert got is not None and got.token == TOKEN
    raw = await stored_tokens(target)
    assert len(raw) == 2
    for value in raw:
        assert value.startswith(PREFIX)
        assert TOKEN not in value
    # it really is Fernet under KEY_A
    plain = Fernet(KEY_A.encode()).decrypt(raw[1][len(PREFIX) :].encode()).decode()
    assert plain == TOKEN + "-2"


async def test_rotation_new_key_first_reencrypts_then_the_old_key_can_go(
    target: Path | str,
) -> None:
    async with make_store(target, secret_key=KEY_A) as s:
        await s.save_user(user())
    under_a = await stored_tokens(target)

    async with make_store(target, secret_key=f"{KEY_B}, {KEY_A}") as s:  # rotate: B first
        got = await s.get_user("telegram", "u1")
        assert got is not None and got.token == TOKEN
    under_b = await stored_tokens(target)
    assert under_b != under_a
    Fernet(KEY_B.encode()).decrypt(under_b[0][len(PREFIX) :].encode())  # B alone reads it

    async with make_store(target, secret_key=KEY_B) as s:  # A dropped
        got = await s.get_user("telegram", "u1")
        assert got is not None and got.token == TOKEN


async def test_tokens_stored_before_a_key_was_set_are_encrypted_at_the_next_open(
    target: Path | str,
) -> None:
    async with make_store(target) as s:
        await s.save_user(user())
    assert await stored_tokens(target) == [TOKEN]  # no key: as before
    async with make_store(target, secret_key=KEY_A) as s:
        got = await s.get_user("telegram", "u1")
        assert got is not None and got.token == TOKEN
    raw = await stored_tokens(target)
    assert raw[0].startswith(PREFIX) and TOKEN not in raw[0]


async def test_encrypted_data_without_the_key_is_one_clear_line(target: Path | str) -> None:
    async with make_store(target, secret_key=KEY_A) as s:
        await s.save_user(user())
    with pytest.raises(StoreError) as info:
        await make_store(target).open()
    message = str(info.value)
    assert "NEMO_SECRET_KEY is not set" in message and "\n" not in message

    with pytest.raises(SecretKeyError) as wrong:
        await make_store(target, secret_key=KEY_B).open()
    assert "none of the keys" in str(wrong.value) and "\n" not in str(wrong.value)


def test_settings_take_the_key_and_a_database_url_from_env_and_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NEMO_BOT_DB", "NEMO_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    url = "postgresql://bot:s3cret@db.internal:5432/nemo"
    (tmp_path / ".env").write_text(f"NEMO_BOT_DB={url}\nNEMO_SECRET_KEY={KEY_A},{KEY_B}\n")
    settings = load_settings()
    assert settings.db_target == url
    assert "s3cret" not in repr(settings) and KEY_A not in repr(settings)
    assert settings.nemo_secret_key is not None
    assert settings.nemo_secret_key.get_secret_value() == f"{KEY_A},{KEY_B}"

    monkeypatch.setenv("NEMO_BOT_DB", "postgres://bot@db.internal/nemo")
    assert load_settings().db_target == "postgres://bot@db.internal/nemo"
    monkeypatch.setenv("NEMO_BOT_DB", str(tmp_path / "bot.db"))
    assert load_settings().db_target == tmp_path / "bot.db"
    monkeypatch.delenv("NEMO_BOT_DB")
    assert Settings(_env_file=None).db_target == Path("./data/nemo-bot.db")  # type: ignore[call-arg]


def test_a_malformed_key_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEMO_SECRET_KEY", f"{KEY_A},not-a-key")
    with pytest.raises(SettingsError) as info:
        load_settings(_env_file=None)
    assert str(info.value).startswith("NEMO_SECRET_KEY:")
    assert "key 2 is not a Fernet key" in str(info.value)
    assert KEY_A not in str(info.value)


async def test_the_chat_process_on_postgres_stores_its_token_encrypted(
    sim_url: str, pg_url: str
) -> None:
    env = {"NEMO_API_BASE": sim_url, "NEMO_BOT_DB": pg_url, "NEMO_SECRET_KEY": KEY_A}
    first = run_cli("chat", "-m", "credits", env=env)
    assert first.returncode == 0, first.stderr
    rows = await raw_rows(pg_url, "SELECT token, client_id FROM users")
    assert len(rows) == 1
    token = str(rows[0][0])
    assert token.startswith(PREFIX)
    plain = Fernet(KEY_A.encode()).decrypt(token[len(PREFIX) :].encode()).decode()
    assert plain and plain not in token

    again = run_cli("chat", "-m", "credits", env=env)  # the second run reads it back
    assert again.returncode == 0, again.stderr
    assert await raw_rows(pg_url, "SELECT count(*) FROM users") == [(1,)]

    refused = run_cli("chat", "-m", "credits", env={**env, "NEMO_SECRET_KEY": ""})
    assert refused.returncode != 0
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "NEMO_SECRET_KEY is not set" in lines[0]
    assert "Traceback" not in refused.stderr
