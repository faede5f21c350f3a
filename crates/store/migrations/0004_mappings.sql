-- Mapping definitions, every version kept, and which version of each is deployed.
CREATE TABLE mappings (
    connection TEXT NOT NULL,
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    spec       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (connection, name, version)
);

CREATE TABLE deployments (
    connection  TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    deployed_at TEXT NOT NULL,
    deployed_by TEXT NOT NULL,
    PRIMARY KEY (connection, name)
);
