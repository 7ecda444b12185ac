-- 0005: a shared sliding-window rate limit.
--
-- A scope limited to N events per window owns N slots, each holding the time of the
-- event that last used it. An event takes a slot whose time is at least one window
-- old, so no window-long stretch ever holds more than N events, however many
-- replicas take slots. (counters, in 0004, count per fixed window instead.)

CREATE TABLE rate_slots (
    scope  TEXT NOT NULL,
    slot   INTEGER NOT NULL,
    at     REAL NOT NULL,
    PRIMARY KEY (scope, slot)
);
