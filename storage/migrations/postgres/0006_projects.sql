-- 0006: every project a user has had; the PostgreSQL twin of ../sqlite/0006_projects.sql.

CREATE TABLE projects (
    platform    TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    chat_id     TEXT NOT NULL,
    task_id     TEXT,
    title       TEXT,
    created_at  DOUBLE PRECISION NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (platform, user_id, session_id),
    FOREIGN KEY (platform, user_id) REFERENCES users (platform, user_id) ON DELETE CASCADE
);

CREATE INDEX projects_recent ON projects (platform, user_id, updated_at);
CREATE INDEX renders_session ON renders (session_id, completed_at);

INSERT INTO projects (platform, user_id, session_id, chat_id, task_id, title, created_at, updated_at)
SELECT platform, user_id, session_id, chat_id, task_id, NULL, created_at, updated_at FROM sessions;
