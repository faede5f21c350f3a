-- Relay progress is `outbox.published_at`; this index finds what is left to publish.
CREATE INDEX outbox_unpublished ON outbox (connection, seq) WHERE published_at IS NULL;

-- Commands already processed, by id, with the receipt that was published: a redelivered
-- command gets the same receipt again instead of a second M3 transaction.
CREATE TABLE commands (
    connection TEXT NOT NULL,
    command_id TEXT NOT NULL,
    command    TEXT NOT NULL,
    status     TEXT NOT NULL,
    receipt    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (connection, command_id)
);
