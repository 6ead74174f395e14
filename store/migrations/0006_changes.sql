-- A feed of changes per user, for revoking live connections: every relay
-- polls it and closes the connections it granted to each user named here.
-- The generation counter of 0005 says that something changed; this table
-- says who. The triggers fill it in the same transaction as the change,
-- whichever process makes it, so a relay only ever reads committed changes.
--
-- A row is written for: a user added, changed (except the rehash of a
-- password at login, as in 0005) or removed; a user's roles changed; a role
-- a user holds changed or removed (one row per holder); a username locked out
-- (locked_until set to a new value) when such a user exists. Account rows
-- have no trigger: a user's account is a column of users, and an account's
-- limits live in the server's config, not in the user JWT. Failed logins
-- that do not lock write nothing, so an attacker cannot grow the table.
--
-- id orders the rows: SQLite has one writer at a time, so ids are assigned
-- in commit order, and AUTOINCREMENT never reuses one after pruning.
-- time is Unix seconds, for pruning.
CREATE TABLE user_changes (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    user TEXT NOT NULL,
    time INTEGER NOT NULL
) STRICT;

-- Lets PruneUserChanges find old rows.
CREATE INDEX user_changes_time ON user_changes (time);

CREATE TRIGGER users_insert_changes AFTER INSERT ON users
BEGIN INSERT INTO user_changes (user, time) VALUES (NEW.name, CAST(strftime('%s', 'now') AS INTEGER)); END;
CREATE TRIGGER users_update_changes AFTER UPDATE ON users
WHEN NEW.rehashes IS OLD.rehashes
BEGIN
    INSERT INTO user_changes (user, time) VALUES (OLD.name, CAST(strftime('%s', 'now') AS INTEGER));
    INSERT INTO user_changes (user, time) SELECT NEW.name, CAST(strftime('%s', 'now') AS INTEGER) WHERE NEW.name IS NOT OLD.name;
END;
CREATE TRIGGER users_delete_changes AFTER DELETE ON users
BEGIN INSERT INTO user_changes (user, time) VALUES (OLD.name, CAST(strftime('%s', 'now') AS INTEGER)); END;

CREATE TRIGGER user_roles_insert_changes AFTER INSERT ON user_roles
BEGIN INSERT INTO user_changes (user, time) VALUES (NEW.user, CAST(strftime('%s', 'now') AS INTEGER)); END;
CREATE TRIGGER user_roles_update_changes AFTER UPDATE ON user_roles
BEGIN
    INSERT INTO user_changes (user, time) VALUES (OLD.user, CAST(strftime('%s', 'now') AS INTEGER));
    INSERT INTO user_changes (user, time) SELECT NEW.user, CAST(strftime('%s', 'now') AS INTEGER) WHERE NEW.user IS NOT OLD.user;
END;
CREATE TRIGGER user_roles_delete_changes AFTER DELETE ON user_roles
BEGIN INSERT INTO user_changes (user, time) VALUES (OLD.user, CAST(strftime('%s', 'now') AS INTEGER)); END;

-- Holders are found by user_roles_role (0002).
CREATE TRIGGER roles_update_changes AFTER UPDATE ON roles
BEGIN
    INSERT INTO user_changes (user, time)
    SELECT user, CAST(strftime('%s', 'now') AS INTEGER) FROM user_roles WHERE role IN (OLD.name, NEW.name);
END;
CREATE TRIGGER roles_delete_changes AFTER DELETE ON roles
BEGIN
    INSERT INTO user_changes (user, time)
    SELECT user, CAST(strftime('%s', 'now') AS INTEGER) FROM user_roles WHERE role = OLD.name;
END;

CREATE TRIGGER lockouts_insert_changes AFTER INSERT ON lockouts
WHEN NEW.kind = 'user' AND NEW.locked_until IS NOT NULL
BEGIN
    INSERT INTO user_changes (user, time)
    SELECT NEW.key, CAST(strftime('%s', 'now') AS INTEGER) WHERE EXISTS (SELECT 1 FROM users WHERE name = NEW.key);
END;
CREATE TRIGGER lockouts_update_changes AFTER UPDATE OF locked_until ON lockouts
WHEN NEW.kind = 'user' AND NEW.locked_until IS NOT NULL AND NEW.locked_until IS NOT OLD.locked_until
BEGIN
    INSERT INTO user_changes (user, time)
    SELECT NEW.key, CAST(strftime('%s', 'now') AS INTEGER) WHERE EXISTS (SELECT 1 FROM users WHERE name = NEW.key);
END;
