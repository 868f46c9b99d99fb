-- Access keys sign requests (ZC2-HMAC-SHA256); tokens are bearer credentials.
-- Neither secret is stored in clear: passwords are sealed under the server key, tokens hashed.
CREATE TABLE access_keys (
    key_id      TEXT    PRIMARY KEY,
    account_id  BIGINT  NOT NULL REFERENCES accounts (id),
    sealed      BYTEA   NOT NULL,
    created_at  TEXT    NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX access_keys_by_account ON access_keys (account_id);

CREATE TABLE tokens (
    token_id    TEXT    PRIMARY KEY,
    account_id  BIGINT  NOT NULL REFERENCES accounts (id),
    token_hash  BYTEA   NOT NULL UNIQUE,
    created_at  TEXT    NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX tokens_by_account ON tokens (account_id);
