-- The PostgreSQL schema of the store: the SQLite schema at its latest state (migrations/0001 to
-- 0007) in one step. A later change gets its own file here (0002_...) next to its SQLite twin.
--
-- Every text column is COLLATE "C": keys, names and timestamps compare and sort byte by byte, as
-- in SQLite (its default BINARY collation), whatever the database's locale. Paging by key
-- (`key > $after ORDER BY key`) depends on it.

-- The embedded message log (outbox). `seq` comes from a sequence; writers of one connection
-- serialise on an advisory lock so that seq order is commit order (see src/postgres.rs).
CREATE TABLE outbox (
    seq          BIGSERIAL PRIMARY KEY,
    connection   TEXT COLLATE "C" NOT NULL,
    mapping      TEXT COLLATE "C" NOT NULL,
    id           TEXT COLLATE "C" NOT NULL,
    type         TEXT COLLATE "C" NOT NULL,
    source       TEXT COLLATE "C" NOT NULL,
    subject      TEXT COLLATE "C" NOT NULL,
    time         TEXT COLLATE "C" NOT NULL,
    dataschema   TEXT COLLATE "C" NOT NULL,
    payload      TEXT NOT NULL,
    published_at TEXT COLLATE "C"
);
CREATE INDEX outbox_connection_seq ON outbox (connection, seq);
-- Relay progress is `outbox.published_at`; this index finds what is left to publish.
CREATE INDEX outbox_unpublished ON outbox (connection, seq) WHERE published_at IS NULL;

-- Change cursors, per mapping (and `$uplink`, a self-hosted connector's ingest position).
CREATE TABLE cursors (
    connection  TEXT COLLATE "C" NOT NULL,
    mapping     TEXT COLLATE "C" NOT NULL,
    fingerprint TEXT COLLATE "C" NOT NULL,
    position    TEXT NOT NULL,
    updated_at  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (connection, mapping)
);

-- Entity state: read models and the content hashes that drop no-op changes. `position` is the
-- source position (M3 change timestamp) of the stored state, so a late, older event cannot
-- overwrite it.
CREATE TABLE entities (
    connection TEXT COLLATE "C" NOT NULL,
    mapping    TEXT COLLATE "C" NOT NULL,
    key        TEXT COLLATE "C" NOT NULL,
    hash       BIGINT NOT NULL,
    state      TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    seen       BIGINT NOT NULL DEFAULT 0,
    updated_at TEXT COLLATE "C" NOT NULL,
    position   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (connection, mapping, key)
);

-- Commands already processed, by id, with the receipt that was published: a redelivered
-- command gets the same receipt again instead of a second M3 transaction.
CREATE TABLE commands (
    connection TEXT COLLATE "C" NOT NULL,
    command_id TEXT COLLATE "C" NOT NULL,
    command    TEXT COLLATE "C" NOT NULL,
    status     TEXT COLLATE "C" NOT NULL,
    receipt    TEXT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (connection, command_id)
);

-- Mapping definitions, every version kept, and which version of each is deployed.
CREATE TABLE mappings (
    connection TEXT COLLATE "C" NOT NULL,
    name       TEXT COLLATE "C" NOT NULL,
    version    BIGINT NOT NULL,
    spec       TEXT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    created_by TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (connection, name, version)
);

CREATE TABLE deployments (
    connection  TEXT COLLATE "C" NOT NULL,
    name        TEXT COLLATE "C" NOT NULL,
    version     BIGINT NOT NULL,
    deployed_at TEXT COLLATE "C" NOT NULL,
    deployed_by TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (connection, name)
);

-- API bearer tokens. Only a SHA-256 of each token's secret is kept; the token is shown once.
CREATE TABLE api_tokens (
    id         TEXT COLLATE "C" PRIMARY KEY,
    name       TEXT COLLATE "C" NOT NULL,
    scope      TEXT COLLATE "C" NOT NULL,
    connection TEXT COLLATE "C",
    hash       TEXT COLLATE "C" NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    revoked_at TEXT COLLATE "C"
);

-- Command mapping definitions (command name -> MI transaction), every version kept. Deleting a
-- command mapping appends a tombstone version (`deleted`, spec `null`), so its history stays
-- and a deleted default is not re-created at the next start.
CREATE TABLE command_mappings (
    connection TEXT COLLATE "C" NOT NULL,
    name       TEXT COLLATE "C" NOT NULL,
    version    BIGINT NOT NULL,
    spec       TEXT NOT NULL,
    deleted    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TEXT COLLATE "C" NOT NULL,
    created_by TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (connection, name, version)
);

-- Connections created through the API (the one in the configuration file is not stored here).
-- `settings` holds what may be shown (JSON); `secrets` holds values sealed by the vault
-- (AEAD, bound to connection and field), never returned by the API.
CREATE TABLE connections (
    name       TEXT COLLATE "C" PRIMARY KEY,
    hosting    TEXT COLLATE "C" NOT NULL,
    settings   TEXT NOT NULL,
    secrets    TEXT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    created_by TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL
);

-- Who runs a connection's connector: one holder at a time, until `expires_at` (Unix ms) unless renewed.
CREATE TABLE connector_leases (
    connection  TEXT COLLATE "C" PRIMARY KEY,
    holder      TEXT COLLATE "C" NOT NULL,
    acquired_at TEXT COLLATE "C" NOT NULL,
    expires_at  BIGINT NOT NULL
);
