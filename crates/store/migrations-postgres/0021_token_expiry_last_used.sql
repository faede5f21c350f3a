-- API tokens: an optional expiry (RFC 3339; refused after it) and the time each was last accepted.
ALTER TABLE api_tokens ADD COLUMN expires_at TEXT;
ALTER TABLE api_tokens ADD COLUMN last_used_at TEXT;
