-- The twin of migrations/0009_outbox_retention.sql (see there and src/retention.rs).

CREATE TABLE outbox_marks (
    at  TEXT COLLATE "C" NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (at, seq)
);

CREATE TABLE outbox_horizons (
    connection      TEXT COLLATE "C" PRIMARY KEY,
    changes_through BIGINT NOT NULL,
    state_through   BIGINT NOT NULL
);
