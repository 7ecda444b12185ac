-- 0006: every project a user has had, so they can list them and switch back.
--
-- A row per backend session a user ever had (sessions keeps only the current one
-- per chat). The title is the user's first prompt in the project. Whether a
-- project has a video is read from renders (by session_id), never copied here.

CREATE TABLE projects (
    platform    TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    chat_id     TEXT NOT NULL,
    task_id     TEXT,
    title       TEXT,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (platform, user_id, session_id),
    FOREIGN KEY (platform, user_id) REFERENCES users (platform, user_id) ON DELETE CASCADE
);

-- list_projects(): the user's projects, most recently used first.
CREATE INDEX projects_recent ON projects (platform, user_id, updated_at);
-- last_video() and list_projects()'s "has a video": renders of one session.
CREATE INDEX renders_session ON renders (session_id, completed_at);

-- The projects people already have become their first history entries.
INSERT INTO projects (platform, user_id, session_id, chat_id, task_id, title, created_at, updated_at)
SELECT platform, user_id, session_id, chat_id, task_id, NULL, created_at, updated_at FROM sessions;
