-- A version per user, for the relays' credential caches: every relay reads
-- the version of the user it is about to answer from its cache, and uses a
-- cached verification only while the version is still the one read before
-- the password was verified. The generation counter of 0005 changes with
-- every change anywhere, so a single admin write to one user emptied every
-- cache in effect; this version changes only with a change that can change
-- what a login of that user is granted:
--
--   the user's row added, changed (except a rehash of the password at login,
--   as in 0005) or removed;
--   the user's roles (user_roles rows) added, changed or removed;
--   a role the user holds added, changed or removed;
--   the user's account added, changed or removed.
--
-- The triggers write it in the same transaction as the change, whichever
-- process makes it, so a change applies on the very next connect.
--
-- Values come from one counter (user_version_seq) that only ever grows, so
-- no user ever has the same version twice, not even after being removed and
-- added again under the same name (a removed user has no row: the relay
-- reads 0, which no change ever assigns). A change bumps the counter once
-- and gives every user it concerns the new value.
CREATE TABLE user_version_seq (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 0),
    n  INTEGER NOT NULL
) STRICT;
INSERT INTO user_version_seq (id, n) VALUES (0, 1);

CREATE TABLE user_versions (
    user TEXT NOT NULL PRIMARY KEY,
    v    INTEGER NOT NULL CHECK (v > 0)
) STRICT, WITHOUT ROWID;

-- Every user that exists now starts at 1.
INSERT INTO user_versions (user, v) SELECT name, 1 FROM users;

CREATE TRIGGER users_insert_version AFTER INSERT ON users
BEGIN
    UPDATE user_version_seq SET n = n + 1;
    INSERT INTO user_versions (user, v) VALUES (NEW.name, (SELECT n FROM user_version_seq))
    ON CONFLICT (user) DO UPDATE SET v = excluded.v;
END;
CREATE TRIGGER users_update_version AFTER UPDATE ON users
WHEN NEW.rehashes IS OLD.rehashes
BEGIN
    UPDATE user_version_seq SET n = n + 1;
    DELETE FROM user_versions WHERE user = OLD.name AND OLD.name IS NOT NEW.name;
    INSERT INTO user_versions (user, v) VALUES (NEW.name, (SELECT n FROM user_version_seq))
    ON CONFLICT (user) DO UPDATE SET v = excluded.v;
END;
CREATE TRIGGER users_delete_version AFTER DELETE ON users
BEGIN DELETE FROM user_versions WHERE user = OLD.name; END;

CREATE TRIGGER user_roles_insert_version AFTER INSERT ON user_roles
BEGIN
    UPDATE user_version_seq SET n = n + 1;
    UPDATE user_versions SET v = (SELECT n FROM user_version_seq) WHERE user = NEW.user;
END;
CREATE TRIGGER user_roles_update_version AFTER UPDATE ON user_roles
BEGIN
    UPDATE user_version_seq SET n = n + 1;
    UPDATE user_versions SET v = (SELECT n FROM user_version_seq) WHERE user IN (OLD.user, NEW.user);
END;
CREATE TRIGGER user_roles_delete_version AFTER DELETE ON user_roles
BEGIN
    UPDATE user_version_seq SET n = n + 1;
    UPDATE user_versions SET v = (SELECT n FROM user_version_seq) WHERE user = OLD.user;
END;

-- Holders are found by user_roles_role (0002). A role cannot be added while
-- users hold it (the foreign key), unless foreign keys are off: the insert
-- trigger is for that case.
CREATE TRIGGER roles_insert_version AFTER INSERT ON roles
BEGIN
    UPDATE user_version_seq SET n = n + 1;
    UPDATE user_versions SET v = (SELECT n FROM user_version_seq)
    WHERE user IN (SELECT user FROM user_roles WHERE role = NEW.name);
END;
CREATE TRIGGER roles_update_version AFTER UPDATE ON roles
BEGIN
    UPDATE user_version_seq SET n = n + 1;
    UPDATE user_versions SET v = (SELECT n FROM user_version_seq)
    WHERE user IN (SELECT user FROM user_roles WHERE role IN (OLD.name, NEW.name));
END;
CREATE TRIGGER roles_delete_version AFTER DELETE ON roles
BEGIN
    UPDATE user_version_seq SET n = n + 1;
    UPDATE user_versions SET v = (SELECT n FROM user_version_seq)
    WHERE user IN (SELECT user FROM user_roles WHERE role = OLD.name);
END;

-- An account's users are found by users_account (0001). As with roles, the
-- insert trigger covers users whose account was missing.
CREATE TRIGGER accounts_insert_version AFTER INSERT ON accounts
BEGIN
    UPDATE user_version_seq SET n = n + 1;
    UPDATE user_versions SET v = (SELECT n FROM user_version_seq)
    WHERE user IN (SELECT name FROM users WHERE account = NEW.name);
END;
CREATE TRIGGER accounts_update_version AFTER UPDATE ON accounts
BEGIN
    UPDATE user_version_seq SET n = n + 1;
    UPDATE user_versions SET v = (SELECT n FROM user_version_seq)
    WHERE user IN (SELECT name FROM users WHERE account IN (OLD.name, NEW.name));
END;
CREATE TRIGGER accounts_delete_version AFTER DELETE ON accounts
BEGIN
    UPDATE user_version_seq SET n = n + 1;
    UPDATE user_versions SET v = (SELECT n FROM user_version_seq)
    WHERE user IN (SELECT name FROM users WHERE account = OLD.name);
END;
