-- Signatures of mutating requests already carried out, until their timestamp expires: an
-- identical request replayed within the window is refused on every node (replay.py).
CREATE TABLE used_signatures (
    signature   TEXT    PRIMARY KEY,
    valid_until DOUBLE PRECISION NOT NULL
);
CREATE INDEX used_signatures_by_expiry ON used_signatures (valid_until);
