-- 0009: the database itself records a session's project as the session row is written.
--
-- save_session() used to write the session row and the project row in a transaction of
-- its own: on SQLite that held the store's lock for five trips to the database thread,
-- and in a crowd of new users every other statement queued behind it. A trigger does the
-- same inside the one INSERT ... ON CONFLICT DO UPDATE statement that saves the session
-- (atomic with it): a new row, or a new backend session in a chat, is a project; saving
-- the same session again marks the project used now.

CREATE TRIGGER sessions_remember_project_on_insert AFTER INSERT ON sessions
BEGIN
    INSERT INTO projects (platform, user_id, session_id, chat_id, task_id, created_at, updated_at)
    VALUES (NEW.platform, NEW.user_id, NEW.session_id, NEW.chat_id, NEW.task_id,
            NEW.updated_at, NEW.updated_at)
    ON CONFLICT (platform, user_id, session_id) DO UPDATE SET
        chat_id = excluded.chat_id, updated_at = excluded.updated_at;
END;

CREATE TRIGGER sessions_remember_project_on_update AFTER UPDATE OF session_id, task_id ON sessions
BEGIN
    INSERT INTO projects (platform, user_id, session_id, chat_id, task_id, created_at, updated_at)
    VALUES (NEW.platform, NEW.user_id, NEW.session_id, NEW.chat_id, NEW.task_id,
            NEW.updated_at, NEW.updated_at)
    ON CONFLICT (platform, user_id, session_id) DO UPDATE SET
        chat_id = excluded.chat_id, updated_at = excluded.updated_at;
END;
