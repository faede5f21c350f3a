-- Reconciliation windows: the entities of a mapping in a range of source positions
-- (`window_entities`). `key` makes the index cover the query (no table lookups).
CREATE INDEX entities_position ON entities (connection, mapping, position, key);

-- Source dead letters: rows the source gave that could not be split or mapped. One row per
-- (connection, mapping, key, raw row) - `raw_hash` is the xxh3-128 of the raw text, in hex - kept
-- until the row reads fine again. `touched` orders them by last sighting (a counter per
-- connection: timestamps of one millisecond would tie).
CREATE TABLE source_dead_letters (
    connection TEXT NOT NULL,
    mapping    TEXT NOT NULL,
    key        TEXT NOT NULL,
    raw_hash   TEXT NOT NULL,
    raw        TEXT NOT NULL,
    reason     TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen  TEXT NOT NULL,
    attempts   INTEGER NOT NULL,
    touched    INTEGER NOT NULL,
    PRIMARY KEY (connection, mapping, key, raw_hash)
);
CREATE INDEX source_dead_letters_touched ON source_dead_letters (connection, touched);
