-- Replicas sharing this store announce themselves here (renewed like a lease), so that each can
-- take its fair share of the hosted connections' leases.
CREATE TABLE replicas (
    holder     TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
