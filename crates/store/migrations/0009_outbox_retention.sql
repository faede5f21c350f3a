-- Outbox retention (see src/retention.rs).
--
-- `outbox_marks`: a coarse clock of the log, one row per pruning tick: every message with
-- `seq <= seq` was appended before `at` (RFC 3339, UTC, milliseconds). Retention by age removes
-- the messages below the newest mark older than the retention, so no message is removed
-- before it is at least that old, and the writers need no time stamp of their own.
CREATE TABLE outbox_marks (
    at  TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (at, seq)
);

-- What pruning removed, per connection, so that a reader asking for a removed position is told
-- (410) instead of being handed a silently incomplete log:
-- - `changes_through`: the highest removed `seq` whose key has no later message held (every
--   removal in `delete` mode; a removed delete in `compact` mode): up to where deletes may be
--   gone for a reader that lags further than the retention.
-- - `state_through`: the highest `seq` removed in `delete` mode; a reader after a position below
--   it would get an incomplete log (410). Compaction never raises it.
CREATE TABLE outbox_horizons (
    connection      TEXT PRIMARY KEY,
    changes_through INTEGER NOT NULL,
    state_through   INTEGER NOT NULL
);
