-- One row that serve's readiness check "database writable" rewrites every
-- few seconds while /readyz is asked: a real write transaction, so that a
-- full disk or a read-only database shows without waiting for a login or an
-- audit flush to fail. No trigger reads it and no query of users, roles,
-- accounts, lockouts or the audit trail joins it: the probe changes nothing
-- a login decision, a cache or an admin command sees.
CREATE TABLE write_probe (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 0),
    at TEXT NOT NULL
) STRICT;
INSERT INTO write_probe (id, at) VALUES (0, '');
