-- Credentials other than the password, each naming one user:
--   nkey             value is the user's public nkey (U…): the client signs
--                    the server's nonce with its seed;
--   token            value is the SHA-256, in hex, of an API token
--                    ('authrelay token add'); the token itself is never kept;
--   tls_subject      value is a client certificate's subject in RFC 2253
--                    form, of a chain the server verified;
--   tls_fingerprint  value is the SHA-256, in hex, of a client
--                    certificate's public key (SubjectPublicKeyInfo).
-- A value names one user at most, whatever the kind's other rows: (kind,
-- value) is the key. name is a token's label; expires, when set, is when a
-- token stops working (UTC text, as users.expires).
CREATE TABLE credentials (
    kind    TEXT NOT NULL CHECK (kind IN ('nkey', 'token', 'tls_subject', 'tls_fingerprint')),
    value   TEXT NOT NULL,
    user    TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE ON UPDATE CASCADE,
    name    TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL,
    expires TEXT,
    PRIMARY KEY (kind, value)
) STRICT, WITHOUT ROWID;
CREATE INDEX credentials_user ON credentials (user);

-- A user without a password ('user add --nkey' and the like) keeps the
-- hash of a random secret nobody knows, so that a password login of it
-- costs, and fails, as a wrong password does; password_set tells it apart.
ALTER TABLE users ADD COLUMN password_set INTEGER NOT NULL DEFAULT 1 CHECK (password_set IN (0, 1));

-- A credential added kicks nothing (the user's connections were made with
-- others) but gives the user a new version; one changed or removed closes
-- the user's connections (the change feed, 0006), whose clients reconnect
-- with what they hold, and the connections made with it are refused then.
CREATE TRIGGER credentials_insert_generation AFTER INSERT ON credentials
BEGIN UPDATE generation SET n = n + 1; END;
CREATE TRIGGER credentials_update_generation AFTER UPDATE ON credentials
BEGIN UPDATE generation SET n = n + 1; END;
CREATE TRIGGER credentials_delete_generation AFTER DELETE ON credentials
BEGIN UPDATE generation SET n = n + 1; END;

CREATE TRIGGER credentials_update_changes AFTER UPDATE ON credentials
BEGIN
    INSERT INTO user_changes (user, time) VALUES (OLD.user, CAST(strftime('%s', 'now') AS INTEGER));
    INSERT INTO user_changes (user, time) SELECT NEW.user, CAST(strftime('%s', 'now') AS INTEGER) WHERE NEW.user IS NOT OLD.user;
END;
CREATE TRIGGER credentials_delete_changes AFTER DELETE ON credentials
BEGIN INSERT INTO user_changes (user, time) VALUES (OLD.user, CAST(strftime('%s', 'now') AS INTEGER)); END;

CREATE TRIGGER credentials_insert_version AFTER INSERT ON credentials
BEGIN
    UPDATE user_version_seq SET n = n + 1;
    UPDATE user_versions SET v = (SELECT n FROM user_version_seq) WHERE user = NEW.user;
END;
CREATE TRIGGER credentials_update_version AFTER UPDATE ON credentials
BEGIN
    UPDATE user_version_seq SET n = n + 1;
    UPDATE user_versions SET v = (SELECT n FROM user_version_seq) WHERE user IN (OLD.user, NEW.user);
END;
CREATE TRIGGER credentials_delete_version AFTER DELETE ON credentials
BEGIN
    UPDATE user_version_seq SET n = n + 1;
    UPDATE user_versions SET v = (SELECT n FROM user_version_seq) WHERE user = OLD.user;
END;
