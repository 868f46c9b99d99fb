-- The image lifecycle: instances to image, per-account quotas, and build leases.

-- NULL: the server's default quota (custom images per location).
ALTER TABLE accounts ADD COLUMN image_quota INTEGER;

-- A minimal directory of instances: CreateImage images one's system disk, in its location.
CREATE TABLE instances (
    instance_id   TEXT    PRIMARY KEY,
    account_id    BIGINT  NOT NULL REFERENCES accounts (id),
    location      BIGINT  NOT NULL REFERENCES locations (id),
    disk_size_gb  INTEGER NOT NULL,
    category      TEXT    NOT NULL,   -- the operating system it runs, passed on to its images
    os_type       TEXT    NOT NULL,
    version       TEXT    NOT NULL,
    created_at    TEXT    NOT NULL
);
CREATE INDEX instances_by_account ON instances (account_id);

-- Which instance a custom image was made from, and until when (Unix time) a build worker holds
-- a CREATING image; an expired lease lets another worker, or a restarted one, take it over.
ALTER TABLE images ADD COLUMN instance_id TEXT;
ALTER TABLE images ADD COLUMN build_lease DOUBLE PRECISION;
CREATE INDEX images_building ON images (create_time) WHERE status = 'CREATING';
