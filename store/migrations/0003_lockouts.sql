-- Failed-login counts and lockouts, shared by every relay on the database
-- and kept across restarts. kind 'user' keys a username (known or not),
-- kind 'addr' a client address. failures counts the failures since
-- window_start; locked_until is NULL until the key is first locked; locks is
-- how many times it has been locked, for the escalation, and goes back to 0
-- only when the row is pruned or an admin unlocks the key. updated is the
-- last failure or lock. Times as in 0001.
CREATE TABLE lockouts (
    kind         TEXT NOT NULL CHECK (kind IN ('user', 'addr')),
    key          TEXT NOT NULL,
    failures     INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
    window_start TEXT NOT NULL,
    locked_until TEXT,
    locks        INTEGER NOT NULL DEFAULT 0 CHECK (locks >= 0),
    updated      TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) STRICT, WITHOUT ROWID;

-- Lets ActiveLockouts find the locked keys.
CREATE INDEX lockouts_locked_until ON lockouts (locked_until) WHERE locked_until IS NOT NULL;
-- Lets PruneLockouts find the quiet rows.
CREATE INDEX lockouts_updated ON lockouts (updated);
-- Lets Failed sweep the rows that were never locked and whose window has
-- passed: they mean no more than a missing row.
CREATE INDEX lockouts_never_locked ON lockouts (window_start) WHERE locks = 0;

-- Settings that every process on the database must agree on, such as the
-- password hash policy ('argon2id': Argon2Params as JSON).
CREATE TABLE settings (
    key     TEXT NOT NULL PRIMARY KEY,
    value   TEXT NOT NULL,
    updated TEXT NOT NULL
) STRICT, WITHOUT ROWID;
