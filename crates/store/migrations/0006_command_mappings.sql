-- Command mapping definitions (command name -> MI transaction), every version kept. Deleting a
-- command mapping appends a tombstone version (`deleted = 1`, spec `null`), so its history stays
-- and a deleted default is not re-created at the next start.
CREATE TABLE command_mappings (
    connection TEXT NOT NULL,
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    spec       TEXT NOT NULL,
    deleted    INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (connection, name, version)
);
