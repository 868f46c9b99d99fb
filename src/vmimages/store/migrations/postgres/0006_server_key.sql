-- The fingerprint of the server key the access-key passwords are sealed under (never the key):
-- a process started with another key refuses to start instead of failing every signed request.
CREATE TABLE server_key (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    fingerprint  TEXT    NOT NULL
);
