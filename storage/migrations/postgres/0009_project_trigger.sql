-- 0009: the database itself records a session's project as the session row is written.
--
-- The twin of SQLite's 0009: save_session() no longer writes the project row itself; a
-- trigger does it inside the statement that saves the session (atomic with it): a new
-- row, or a new backend session in a chat, is a project; saving the same session again
-- marks the project used now.

CREATE FUNCTION remember_project() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO projects (platform, user_id, session_id, chat_id, task_id, created_at, updated_at)
    VALUES (NEW.platform, NEW.user_id, NEW.session_id, NEW.chat_id, NEW.task_id,
            NEW.updated_at, NEW.updated_at)
    ON CONFLICT (platform, user_id, session_id) DO UPDATE SET
        chat_id = EXCLUDED.chat_id, updated_at = EXCLUDED.updated_at;
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_remember_project
    AFTER INSERT OR UPDATE OF session_id, task_id ON sessions
    FOR EACH ROW EXECUTE FUNCTION remember_project();
