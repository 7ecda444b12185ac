"""Persistence: the :class:`Store` protocol, its records, and the SQLite and PostgreSQL stores."""

from .base import (
    BroadcastOutcome,
    BroadcastRecord,
    CounterHit,
    InboundUpdate,
    IntegrityError,
    Lease,
    ProjectRecord,
    RenderRecord,
    SessionRecord,
    Store,
    StoreError,
    UserRecord,
)
from .factory import make_store
from .postgres import PostgresStore
from .sqlite import SQLiteStore

__all__ = [
    "BroadcastOutcome",
    "BroadcastRecord",
    "CounterHit",
    "InboundUpdate",
    "IntegrityError",
    "Lease",
    "PostgresStore",
    "ProjectRecord",
    "RenderRecord",
    "SQLiteStore",
    "SessionRecord",
    "Store",
    "StoreError",
    "UserRecord",
    "make_store",
]
