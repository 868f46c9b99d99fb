-- The change log. Every write through the store marks the part of the catalog it changed, in
-- its own transaction, with the next number of one counter; each server process keeps what it
-- read in memory and, before every request, asks which marks are newer than what it has seen
-- (store/memory.py). One row per part, so the table never grows past the number of accounts.
-- Marking takes the counter's row lock until commit, so numbers follow the order of commits.
CREATE TABLE change_counter (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL
);
INSERT INTO change_counter (id, seq) VALUES (1, 0);

-- scope: an account id (its custom images, its quota), 0 (the public catalog and the
-- locations: everything), -1 (access keys and tokens).
CREATE TABLE changes (
    scope  INTEGER PRIMARY KEY,
    seq    INTEGER NOT NULL
);
CREATE INDEX changes_by_seq ON changes (seq);
