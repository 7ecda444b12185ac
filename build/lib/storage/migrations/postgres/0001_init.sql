-- 0001: initial schema (users, sessions, renders); the PostgreSQL twin of
-- ../sqlite/0001_init.sql.
--
-- Applied in filename order by storage/postgres.py, each file in one transaction
-- together with the schema_version row that records it: no BEGIN / COMMIT here.
-- Times are Unix seconds (DOUBLE PRECISION).

CREATE TABLE users (
    platform          TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    client_id         TEXT NOT NULL,
    token             TEXT,              -- secret: never log
    backend_user_id   TEXT,
    token_expires_at  DOUBLE PRECISION,
    token_minted_at   DOUBLE PRECISION,
    language          TEXT,
    created_at        DOUBLE PRECISION NOT NULL,
    updated_at        DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (platform, user_id)
);

CREATE TABLE sessions (
    platform    TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    chat_id     TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    task_id     TEXT,
    draft_json  TEXT,
    created_at  DOUBLE PRECISION NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (platform, user_id, chat_id),
    FOREIGN KEY (platform, user_id) REFERENCES users (platform, user_id) ON DELETE CASCADE
);

CREATE TABLE renders (
    render_id     TEXT PRIMARY KEY NOT NULL,
    session_id    TEXT NOT NULL,
    platform      TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    chat_id       TEXT NOT NULL,
    thread_id     TEXT,
    reply_to      TEXT,
    ref_extra     TEXT,
    status        TEXT NOT NULL DEFAULT 'pending',
    progress      INTEGER NOT NULL DEFAULT 0,
    output_url    TEXT,
    error         TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    summary       TEXT,
    created_at    DOUBLE PRECISION NOT NULL,
    updated_at    DOUBLE PRECISION NOT NULL,
    completed_at  DOUBLE PRECISION,
    delivered_at  DOUBLE PRECISION,
    -- insertion order (SQLite's rowid): the tie-break of undelivered_renders()
    seq           BIGINT GENERATED ALWAYS AS IDENTITY
);

-- undelivered_renders(): WHERE delivered_at IS NULL ORDER BY created_at.
CREATE INDEX renders_delivered_at ON renders (delivered_at, created_at);
