"""Picking the store from ``NEMO_BOT_DB``: a PostgreSQL URL, else a SQLite path."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from .base import Store
from .postgres import PostgresStore, is_postgres_url
from .secrets import TokenCipher
from .sqlite import SQLiteStore

__all__ = ["make_store"]


def make_store(
    target: Path | str,
    *,
    secret_key: str | None = None,
    clock: Callable[[], float] = time.time,
) -> SQLiteStore | PostgresStore:
    """An unopened store for ``target``.

    ``postgresql://user:password@host:port/dbname`` (or ``postgres://``) opens a
    :class:`PostgresStore`; anything else is a SQLite file path (or ``:memory:``).
    ``secret_key`` (``NEMO_SECRET_KEY``: comma-separated Fernet keys) turns on
    encryption of backend tokens at rest.
    """
    cipher = TokenCipher(secret_key) if secret_key else None
    text = str(target)
    if isinstance(target, str) and is_postgres_url(text):
        return PostgresStore(text, clock=clock, cipher=cipher)
    return SQLiteStore(target, clock=clock, cipher=cipher)


# mypy checks here that both stores satisfy the Store protocol
_STORES: tuple[type[Store], ...] = (SQLiteStore, PostgresStore)
