-- 0001: initial schema (users, sessions, renders).
--
-- Migrations are plain SQL, applied in filename order by storage/sqlite.py. Each
-- step has a twin of the same number in ../postgres/ (see storage/migrate.py).
-- Each file runs inside one transaction together with the PRAGMA user_version
-- bump, so do not put BEGIN / COMMIT (or PRAGMA user_version) in here.
-- Times are Unix seconds (REAL).

CREATE TABLE users (
    platform          TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    client_id         TEXT NOT NULL,
    token             TEXT,              -- secret: never log
    backend_user_id   TEXT,
    token_expires_at  REAL,
    token_minted_at   REAL,
    language          TEXT,
    created_at        REAL NOT NULL,
    updated_at        REAL NOT NULL,
    PRIMARY KEY (platform, user_id)
);

CREATE TABLE sessions (
    platform    TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    chat_id     TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    task_id     TEXT,
    draft_json  TEXT,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
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
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL,
    completed_at  REAL,
    delivered_at  REAL
);

-- undelivered_renders(): WHERE delivered_at IS NULL ORDER BY created_at.
CREATE INDEX renders_delivered_at ON renders (delivered_at, created_at);
