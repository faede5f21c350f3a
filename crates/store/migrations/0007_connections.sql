-- Connections created through the API (the one in the configuration file is not stored here).
-- `settings` holds what may be shown (JSON); `secrets` holds values sealed by the vault
-- (AEAD, bound to connection and field), never returned by the API.
CREATE TABLE connections (
    name       TEXT PRIMARY KEY,
    hosting    TEXT NOT NULL,
    settings   TEXT NOT NULL,
    secrets    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Who runs a connection's connector: one holder at a time, until `expires_at` (Unix ms) unless renewed.
CREATE TABLE connector_leases (
    connection TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    acquired_at TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
