-- A hash of the canonical request (connection, command, MI parameters) beside each command's
-- receipt, so a command id reused with different data can be told from a plain redelivery.
-- Receipts recorded before have none (NULL): a reuse of their id is answered as a redelivery.
ALTER TABLE commands ADD COLUMN request_hash TEXT;
