"""Persistence: the :class:`Store` protocol, its records, and the SQLite store."""

from .base import RenderRecord, SessionRecord, Store, UserRecord
from .sqlite import SQLiteStore

__all__ = ["RenderRecord", "SQLiteStore", "SessionRecord", "Store", "UserRecord"]
