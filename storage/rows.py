"""Rows and queries the SQLite and PostgreSQL stores share: same SQL, same decoding.

Only what is written the same in both dialects lives here (no placeholders); each
store keeps its own statements where the dialects differ.
"""

from __future__ import annotations

import time
from dataclasses import fields
from typing import Any

from .base import BroadcastRecord, ProjectRecord, UserRecord
from .secrets import TokenCipher

__all__ = [
    "ADD_OUTCOMES",
    "BROADCAST_COLUMNS",
    "BROADCAST_SELECT",
    "PROJECT_SELECT",
    "USER_COLUMNS",
    "broadcast_of",
    "project_of",
    "queue_has_room",
    "user_values",
    "utc_day",
]

#: The users table's columns, in the order both stores bind them (:func:`user_values`).
USER_COLUMNS = tuple(f.name for f in fields(UserRecord))

BROADCAST_COLUMNS = tuple(f.name for f in fields(BroadcastRecord))
BROADCAST_SELECT = f"SELECT {', '.join(BROADCAST_COLUMNS)} FROM broadcasts"

#: The SET clause that adds a finishing broadcast's recipient rows to its counts (a claim
#: without an outcome was cut short by a crash: it may have been sent, so unconfirmed).
#: ``{p}`` is the dialect's placeholder for the broadcast id, three times.
ADD_OUTCOMES = (
    "sent = sent + (SELECT count(*) FROM broadcast_sends "
    "WHERE broadcast_id = {p} AND state = 'sent'), "
    "failed = failed + (SELECT count(*) FROM broadcast_sends "
    "WHERE broadcast_id = {p} AND state = 'failed'), "
    "unconfirmed = unconfirmed + (SELECT count(*) FROM broadcast_sends "
    "WHERE broadcast_id = {p} AND state IN ('claimed', 'unconfirmed'))"
)

_PROJECT_STORED = tuple(f.name for f in fields(ProjectRecord) if f.name != "has_video")
#: A project with whether it has a finished video (derived, never stored).
PROJECT_SELECT = (
    f"SELECT {', '.join('p.' + c for c in _PROJECT_STORED)}, EXISTS ("
    "SELECT 1 FROM renders r WHERE r.session_id = p.session_id "
    "AND r.status = 'completed' AND r.output_url IS NOT NULL) AS has_video "
    "FROM projects p"
)


def queue_has_room(*, held: bool, here: int, mine: int, limit: int) -> bool:
    """Whether one more request may join a line (:meth:`storage.base.Store.join_queue`).

    ``held``: the session's lease is live; ``here``: the session's live waiters;
    ``mine``: the user's live waiters on every session. A free session's first
    waiter runs at once, so it is not counted as waiting.
    """
    if not held and not here:
        return True  # it runs at once: it does not wait
    return mine - (0 if held else 1) < limit


def utc_day(at: float) -> str:
    """The UTC day of ``at`` as YYYY-MM-DD (the key of daily counts)."""
    return time.strftime("%Y-%m-%d", time.gmtime(at))


def broadcast_of(row: Any) -> BroadcastRecord:
    """A broadcast from a row of :data:`BROADCAST_SELECT`."""
    return BroadcastRecord(**{name: row[name] for name in BROADCAST_COLUMNS})


def project_of(row: Any) -> ProjectRecord:
    """A project from a row of :data:`PROJECT_SELECT`."""
    found = ProjectRecord(**{name: row[name] for name in _PROJECT_STORED})
    found.has_video = bool(row["has_video"])
    return found


def user_values(user: UserRecord, cipher: TokenCipher | None, now: float) -> dict[str, Any]:
    """The user's columns as stored, in :data:`USER_COLUMNS` order: the token encrypted
    (with a cipher), both timestamps ``now``."""
    values = {name: getattr(user, name) for name in USER_COLUMNS}
    if user.token is not None and cipher is not None:
        values["token"] = cipher.encrypt(user.token)
    values["created_at"] = now
    values["updated_at"] = now
    return values
