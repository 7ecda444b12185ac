-- 0008: a broadcast's recipients, one row each, so no one gets it twice; the
-- PostgreSQL twin of ../sqlite/0008_broadcast_sends.sql.

CREATE TABLE broadcast_sends (
    broadcast_id  BIGINT NOT NULL,
    user_id       TEXT NOT NULL,
    state         TEXT NOT NULL,
    at            DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (broadcast_id, user_id)
);

ALTER TABLE broadcasts ADD COLUMN unconfirmed BIGINT NOT NULL DEFAULT 0;
