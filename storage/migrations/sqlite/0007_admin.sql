-- 0007: what the admin commands read and the broadcasts they run.
--
-- contacts: one row per person who has talked to the bot, with when they were
-- last seen (/stats counts users today and in 7 days) and their private chat,
-- where a broadcast goes. daily_stats: counts per UTC day (requests by outcome,
-- errors by code), shared by every replica. broadcasts: a /broadcast in progress
-- or done; ``cursor`` is the last user id it reached, so a restart goes on from there.

CREATE TABLE contacts (
    platform    TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    dm_chat_id  TEXT,
    first_seen  REAL NOT NULL,
    last_seen   REAL NOT NULL,
    PRIMARY KEY (platform, user_id)
);
CREATE INDEX contacts_last_seen ON contacts (last_seen);

CREATE TABLE daily_stats (
    day    TEXT NOT NULL,     -- YYYY-MM-DD, UTC
    kind   TEXT NOT NULL,     -- request | error
    key    TEXT NOT NULL,     -- the outcome, or the error code
    count  INTEGER NOT NULL,
    PRIMARY KEY (day, kind, key)
);

CREATE TABLE broadcasts (
    broadcast_id  INTEGER PRIMARY KEY,
    platform      TEXT NOT NULL,
    text          TEXT NOT NULL,
    admin_chat    TEXT NOT NULL,   -- where the final count goes
    admin_user    TEXT NOT NULL,
    cursor        TEXT,            -- the last user id reached (NULL: none yet)
    sent          INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    created_at    REAL NOT NULL,
    finished_at   REAL
);
