-- 0008: a broadcast's recipients, one row each, so no one gets it twice.
--
-- A row is written (state 'claimed') before the message goes out and updated after
-- ('sent', 'failed', or 'unconfirmed' when the platform's answer was lost). A restart
-- skips everyone with a row: a 'claimed' row left by a crash may have reached its
-- chat, so it is never sent again and counts as unconfirmed. The rows of a finished
-- broadcast are added to its counts and deleted.

CREATE TABLE broadcast_sends (
    broadcast_id  INTEGER NOT NULL,
    user_id       TEXT NOT NULL,
    state         TEXT NOT NULL,   -- claimed | sent | failed | unconfirmed
    at            REAL NOT NULL,
    PRIMARY KEY (broadcast_id, user_id)
);

ALTER TABLE broadcasts ADD COLUMN unconfirmed INTEGER NOT NULL DEFAULT 0;
