-- Accounts known to authrelay: the NATS accounts users may be placed in.
CREATE TABLE accounts (
    name    TEXT NOT NULL PRIMARY KEY,
    created TEXT NOT NULL -- UTC, 2006-01-02T15:04:05.000000000Z
) STRICT;

-- Users and their password hashes. permissions is accounts.Permissions as
-- JSON; expires is NULL when the user does not expire. Times are UTC text in
-- the same fixed-width format as accounts.created, so they sort and
-- round-trip exactly.
CREATE TABLE users (
    name          TEXT NOT NULL PRIMARY KEY,
    account       TEXT NOT NULL REFERENCES accounts (name),
    password_hash TEXT NOT NULL,
    permissions   TEXT NOT NULL CHECK (json_valid(permissions)),
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    expires       TEXT,
    created       TEXT NOT NULL,
    updated       TEXT NOT NULL
) STRICT;

-- Lets RemoveAccount and the foreign key check find an account's users.
CREATE INDEX users_account ON users (account);
