-- The source position (M3 change timestamp) of each entity's stored state, so a late, older
-- event (a webhook arriving after the poller saw a newer version) cannot overwrite it.
ALTER TABLE entities ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
