-- Accounts own custom images; account 0 is the operator, owner of every public image.
CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    created_at  TEXT    NOT NULL
);

CREATE TABLE locations (
    id                        INTEGER PRIMARY KEY,
    region_id                 TEXT    NOT NULL UNIQUE,
    zone_id                   TEXT    NOT NULL UNIQUE,
    name                      TEXT    NOT NULL,
    support_security_group    INTEGER NOT NULL DEFAULT 1,
    support_network_type      TEXT    NOT NULL DEFAULT 'VPC',
    support_ipv6              INTEGER NOT NULL DEFAULT 0,
    support_cpu_pass_through  INTEGER NOT NULL DEFAULT 0,
    network_line_type         TEXT    NOT NULL DEFAULT 'BGP'
);

CREATE TABLE images (
    pk           INTEGER PRIMARY KEY,
    image_id     TEXT    NOT NULL UNIQUE,
    owner        INTEGER NOT NULL,            -- 0: public (the operator's); else accounts.id
    location     INTEGER NOT NULL REFERENCES locations (id),
    name         TEXT    NOT NULL,
    name_folded  TEXT    NOT NULL,            -- casefold(name), for case-insensitive search
    description  TEXT,
    category     TEXT    NOT NULL,
    os_type      TEXT    NOT NULL,
    version      TEXT    NOT NULL,
    size_gb      INTEGER NOT NULL,
    status       TEXT    NOT NULL,
    create_time  TEXT    NOT NULL             -- UTC 'YYYY-MM-DDThh:mm:ssZ'
);

-- Visibility (owner) and location lead every query; the tail gives the order for free.
CREATE INDEX images_by_owner_location ON images (owner, location, create_time DESC, image_id);
CREATE INDEX images_by_owner_time ON images (owner, create_time DESC, image_id);

INSERT INTO accounts (id, name, created_at) VALUES (0, 'operator', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));
