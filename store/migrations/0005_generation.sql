-- A change counter for everything a login decision reads from the database:
-- users, their roles, roles and accounts. Every relay keeps a cache of
-- recently verified credentials and reads this one row on each decision; an
-- entry is used only while the counter still holds the value read before
-- the credential was verified. The triggers bump the counter in the same
-- transaction as the change, whichever process makes it (serve, the CLI, or
-- a hand-written statement), so a change applies on the very next connect.
--
-- The counter is global: any admin change empties every relay's cache in
-- effect. Admin changes are rare; logins are not. Lockouts, the audit trail
-- and settings have no trigger: a failed login must not flush the cache (an
-- attacker could keep every user on the slow path), and relays check
-- lockouts on every decision anyway.
CREATE TABLE generation (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 0),
    n  INTEGER NOT NULL
) STRICT;
INSERT INTO generation (id, n) VALUES (0, 0);

-- rehashes counts the store's rehashes of the user's password at login (a
-- new hash of the same password at the current hash policy). The rehash
-- statement, and only it, increments it, and that is how the users trigger
-- below tells a rehash from a change: a rehash leaves the credential as it
-- was, and must not flush the caches of every relay once per user after a
-- hash policy change. Any other update, a password change included, bumps
-- the generation.
ALTER TABLE users ADD COLUMN rehashes INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER users_insert_generation AFTER INSERT ON users
BEGIN UPDATE generation SET n = n + 1; END;
CREATE TRIGGER users_update_generation AFTER UPDATE ON users
WHEN NEW.rehashes IS OLD.rehashes
BEGIN UPDATE generation SET n = n + 1; END;
CREATE TRIGGER users_delete_generation AFTER DELETE ON users
BEGIN UPDATE generation SET n = n + 1; END;

CREATE TRIGGER user_roles_insert_generation AFTER INSERT ON user_roles
BEGIN UPDATE generation SET n = n + 1; END;
CREATE TRIGGER user_roles_update_generation AFTER UPDATE ON user_roles
BEGIN UPDATE generation SET n = n + 1; END;
CREATE TRIGGER user_roles_delete_generation AFTER DELETE ON user_roles
BEGIN UPDATE generation SET n = n + 1; END;

CREATE TRIGGER roles_insert_generation AFTER INSERT ON roles
BEGIN UPDATE generation SET n = n + 1; END;
CREATE TRIGGER roles_update_generation AFTER UPDATE ON roles
BEGIN UPDATE generation SET n = n + 1; END;
CREATE TRIGGER roles_delete_generation AFTER DELETE ON roles
BEGIN UPDATE generation SET n = n + 1; END;

CREATE TRIGGER accounts_insert_generation AFTER INSERT ON accounts
BEGIN UPDATE generation SET n = n + 1; END;
CREATE TRIGGER accounts_update_generation AFTER UPDATE ON accounts
BEGIN UPDATE generation SET n = n + 1; END;
CREATE TRIGGER accounts_delete_generation AFTER DELETE ON accounts
BEGIN UPDATE generation SET n = n + 1; END;
