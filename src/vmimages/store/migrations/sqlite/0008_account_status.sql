-- An account can be disabled (its credentials refused until enabled again) or deleted: the row
-- stays as a record (its name stays taken, its id is never given again), without credentials,
-- instances or custom images.
ALTER TABLE accounts ADD COLUMN disabled_at TEXT;
ALTER TABLE accounts ADD COLUMN deleted_at TEXT;
