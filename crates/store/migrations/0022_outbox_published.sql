-- Relay progress as one row per connection instead of a time stamp on every message.
--
-- The relay (and a self-hosted connector's uplink) marks what the broker acknowledged as a
-- prefix of the connection's log: every message with `seq <= seq` here. Marking used to update
-- `outbox.published_at` on each of those rows and take each out of the `outbox_unpublished`
-- index, so every message was written twice; now a mark rewrites this one row. The column
-- `outbox.published_at` stays (old rows keep their value) but is no longer written or read.
CREATE TABLE outbox_published (
    connection TEXT PRIMARY KEY,
    seq        INTEGER NOT NULL
);

-- Marks have always been prefixes (`seq <= ? AND published_at IS NULL`), so each connection's
-- published messages are those below its first unpublished one (all of them when none is left).
INSERT INTO outbox_published (connection, seq)
SELECT o.connection,
       COALESCE((SELECT MIN(u.seq) FROM outbox u WHERE u.connection = o.connection AND u.published_at IS NULL) - 1,
                MAX(o.seq))
FROM outbox o
GROUP BY o.connection;

DROP INDEX outbox_unpublished;
