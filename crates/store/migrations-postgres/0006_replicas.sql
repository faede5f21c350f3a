-- Replicas sharing this store announce themselves here (renewed like a lease), so that each can
-- take its fair share of the hosted connections' leases.
CREATE TABLE replicas (
    holder     TEXT COLLATE "C" PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
