-- The twin of migrations/0008_windows_and_source_dead_letters.sql.

-- Reconciliation windows: the entities of a mapping in a range of source positions
-- (`window_entities`). `key` makes the index cover the query.
CREATE INDEX entities_position ON entities (connection, mapping, position, key);

-- Source dead letters: rows the source gave that could not be split or mapped. One row per
-- (connection, mapping, key, raw row) - `raw_hash` is the xxh3-128 of the raw text, in hex - kept
-- until the row reads fine again. `touched` orders them by last sighting (from a sequence:
-- timestamps of one millisecond would tie).
CREATE SEQUENCE source_dead_letters_touched;
CREATE TABLE source_dead_letters (
    connection TEXT COLLATE "C" NOT NULL,
    mapping    TEXT COLLATE "C" NOT NULL,
    key        TEXT COLLATE "C" NOT NULL,
    raw_hash   TEXT COLLATE "C" NOT NULL,
    raw        TEXT NOT NULL,
    reason     TEXT NOT NULL,
    first_seen TEXT COLLATE "C" NOT NULL,
    last_seen  TEXT COLLATE "C" NOT NULL,
    attempts   BIGINT NOT NULL,
    touched    BIGINT NOT NULL DEFAULT nextval('source_dead_letters_touched'),
    PRIMARY KEY (connection, mapping, key, raw_hash)
);
CREATE INDEX source_dead_letters_touched_order ON source_dead_letters (connection, touched);
