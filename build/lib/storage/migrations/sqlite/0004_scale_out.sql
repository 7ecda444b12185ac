-- 0004: what several replicas on one database coordinate through.
--
-- session_leases: one row per session key, never deleted, so its fencing token only
-- grows. session_waiters: the requests waiting for a session, ordered by the
-- platform's sequence number; a waiter that stops refreshing its row (its process
-- died) stops counting once expires_at passes. inbound_updates: platform updates
-- stored before they are answered, unique by (platform, update_id). counters:
-- fixed-window counts for rate limits that survive restarts.

CREATE TABLE session_leases (
    key          TEXT PRIMARY KEY NOT NULL,
    owner        TEXT,                      -- NULL: free
    token        INTEGER NOT NULL DEFAULT 0, -- +1 on every new claim
    expires_at   REAL NOT NULL DEFAULT 0,
    acquired_at  REAL
);

CREATE TABLE session_waiters (
    key         TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    owner       TEXT NOT NULL,
    expires_at  REAL NOT NULL,
    PRIMARY KEY (key, seq, owner)
);

CREATE TABLE inbound_updates (
    platform     TEXT NOT NULL,
    update_id    INTEGER NOT NULL,
    payload      TEXT NOT NULL,
    received_at  REAL NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    stage        TEXT,
    claimed_by   TEXT,
    claimed_at   REAL,
    done_at      REAL,
    PRIMARY KEY (platform, update_id)
);

-- claim_updates(): the oldest pending updates of a platform.
CREATE INDEX inbound_updates_pending ON inbound_updates (platform, done_at, update_id);

CREATE TABLE counters (
    scope         TEXT NOT NULL,
    key           TEXT NOT NULL,
    window_start  REAL NOT NULL,
    window_end    REAL NOT NULL,
    count         INTEGER NOT NULL,
    PRIMARY KEY (scope, key, window_start)
);
