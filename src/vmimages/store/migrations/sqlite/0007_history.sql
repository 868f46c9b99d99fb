-- The history: one row per change to an image (history.py), numbered by the change counter in
-- the transaction that makes it, so numbers follow the order of commits. DescribeImageChanges
-- and `vmimages changes` read it; rows older than the retention are compacted away, and
-- history_floor keeps the highest number removed (a cursor below it is too old).
CREATE TABLE image_changes (
    seq          INTEGER PRIMARY KEY,
    image_id     TEXT    NOT NULL,
    owner        INTEGER NOT NULL,            -- 0: a public image; else accounts.id
    region_id    TEXT    NOT NULL,            -- where it is (or was)
    zone_id      TEXT    NOT NULL,
    kind         TEXT    NOT NULL,            -- CREATED, MODIFIED, DELETED
    at           TEXT    NOT NULL,            -- UTC 'YYYY-MM-DDThh:mm:ssZ'
    actor        TEXT    NOT NULL,            -- who: an account and credential, or a command
    detail       TEXT                         -- JSON: what changed (MODIFIED), what went (DELETED)
);
CREATE INDEX image_changes_by_image ON image_changes (image_id, seq);
CREATE INDEX image_changes_by_owner ON image_changes (owner, seq);
CREATE INDEX image_changes_by_time ON image_changes (at);

CREATE TABLE history_floor (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL
);
INSERT INTO history_floor (id, seq) VALUES (1, 0);
