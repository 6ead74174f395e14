-- OpenID Connect / OAuth2 identity providers ('authrelay idp add'), whose
-- signed tokens (JWTs) clients present instead of a password. name is how
-- admins and user bindings name one; issuer and audience are what a token
-- must carry (iss exactly, aud holding it); account is where users it
-- creates are placed; username_claim names the claim that is the
-- authrelay username ('' for sub); roles_claim and role_map (a JSON object
-- of claim value to authrelay role) give created users their roles;
-- create_users lets an unknown subject be created on its first login.
CREATE TABLE identity_providers (
    name           TEXT NOT NULL PRIMARY KEY,
    issuer         TEXT NOT NULL,
    audience       TEXT NOT NULL,
    account        TEXT NOT NULL DEFAULT '',
    username_claim TEXT NOT NULL DEFAULT '',
    roles_claim    TEXT NOT NULL DEFAULT '',
    role_map       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(role_map) AND json_type(role_map) = 'object'),
    create_users   INTEGER NOT NULL DEFAULT 0 CHECK (create_users IN (0, 1)),
    created        TEXT NOT NULL,
    UNIQUE (issuer, audience)
) STRICT;

-- A user bound to a provider ('user add NAME --idp P') logs in with a
-- token of that provider whose username claim is NAME, and with no other
-- provider's. The binding outlives its provider (no foreign key on
-- provider): 'idp rm' then 'idp add' of the same name restores its users,
-- and while it is gone the login query, which joins identity_providers,
-- finds nobody.
CREATE TABLE user_idps (
    user     TEXT NOT NULL PRIMARY KEY REFERENCES users (name) ON DELETE CASCADE ON UPDATE CASCADE,
    provider TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX user_idps_provider ON user_idps (provider);

-- A binding or a provider changed gives its users a new version (the
-- caches decide again); one removed or changed closes their connections
-- (the change feed, 0006), whose clients reconnect and are decided by what
-- the store says then.
CREATE TRIGGER user_idps_insert_generation AFTER INSERT ON user_idps
BEGIN UPDATE generation SET n = n + 1; END;
CREATE TRIGGER user_idps_update_generation AFTER UPDATE ON user_idps
BEGIN UPDATE generation SET n = n + 1; END;
CREATE TRIGGER user_idps_delete_generation AFTER DELETE ON user_idps
BEGIN UPDATE generation SET n = n + 1; END;
CREATE TRIGGER user_idps_update_changes AFTER UPDATE ON user_idps
BEGIN
    INSERT INTO user_changes (user, time) VALUES (OLD.user, CAST(strftime('%s', 'now') AS INTEGER));
    INSERT INTO user_changes (user, time) SELECT NEW.user, CAST(strftime('%s', 'now') AS INTEGER) WHERE NEW.user IS NOT OLD.user;
END;
CREATE TRIGGER user_idps_delete_changes AFTER DELETE ON user_idps
BEGIN INSERT INTO user_changes (user, time) VALUES (OLD.user, CAST(strftime('%s', 'now') AS INTEGER)); END;
CREATE TRIGGER user_idps_insert_version AFTER INSERT ON user_idps
BEGIN
    UPDATE user_version_seq SET n = n + 1;
    UPDATE user_versions SET v = (SELECT n FROM user_version_seq) WHERE user = NEW.user;
END;
CREATE TRIGGER user_idps_update_version AFTER UPDATE ON user_idps
BEGIN
    UPDATE user_version_seq SET n = n + 1;
    UPDATE user_versions SET v = (SELECT n FROM user_version_seq) WHERE user IN (OLD.user, NEW.user);
END;
CREATE TRIGGER user_idps_delete_version AFTER DELETE ON user_idps
BEGIN
    UPDATE user_version_seq SET n = n + 1;
    UPDATE user_versions SET v = (SELECT n FROM user_version_seq) WHERE user = OLD.user;
END;

CREATE TRIGGER identity_providers_insert_generation AFTER INSERT ON identity_providers
BEGIN
    UPDATE generation SET n = n + 1;
    UPDATE user_version_seq SET n = n + 1;
    UPDATE user_versions SET v = (SELECT n FROM user_version_seq)
        WHERE user IN (SELECT user FROM user_idps WHERE provider = NEW.name);
END;
CREATE TRIGGER identity_providers_update_changes AFTER UPDATE ON identity_providers
BEGIN
    UPDATE generation SET n = n + 1;
    INSERT INTO user_changes (user, time)
        SELECT user, CAST(strftime('%s', 'now') AS INTEGER) FROM user_idps WHERE provider IN (OLD.name, NEW.name);
    UPDATE user_version_seq SET n = n + 1;
    UPDATE user_versions SET v = (SELECT n FROM user_version_seq)
        WHERE user IN (SELECT user FROM user_idps WHERE provider IN (OLD.name, NEW.name));
END;
CREATE TRIGGER identity_providers_delete_changes AFTER DELETE ON identity_providers
BEGIN
    UPDATE generation SET n = n + 1;
    INSERT INTO user_changes (user, time)
        SELECT user, CAST(strftime('%s', 'now') AS INTEGER) FROM user_idps WHERE provider = OLD.name;
    UPDATE user_version_seq SET n = n + 1;
    UPDATE user_versions SET v = (SELECT n FROM user_version_seq)
        WHERE user IN (SELECT user FROM user_idps WHERE provider = OLD.name);
END;
