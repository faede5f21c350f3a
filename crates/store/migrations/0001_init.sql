-- The embedded message log (outbox), change cursors and entity state (read models + content hashes).
CREATE TABLE outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    connection   TEXT NOT NULL,
    mapping      TEXT NOT NULL,
    id           TEXT NOT NULL,
    type         TEXT NOT NULL,
    source       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    time         TEXT NOT NULL,
    dataschema   TEXT NOT NULL,
    payload      TEXT NOT NULL,
    published_at TEXT
);
CREATE INDEX outbox_connection_seq ON outbox (connection, seq);

CREATE TABLE cursors (
    connection  TEXT NOT NULL,
    mapping     TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    position    TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (connection, mapping)
);

CREATE TABLE entities (
    connection TEXT NOT NULL,
    mapping    TEXT NOT NULL,
    key        TEXT NOT NULL,
    hash       INTEGER NOT NULL,
    state      TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    seen       INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (connection, mapping, key)
);
