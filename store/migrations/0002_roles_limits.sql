-- Roles: named sets of permissions that users hold in addition to their own.
-- permissions is accounts.Permissions as JSON; times as in 0001.
CREATE TABLE roles (
    name        TEXT NOT NULL PRIMARY KEY,
    permissions TEXT NOT NULL CHECK (json_valid(permissions)),
    created     TEXT NOT NULL,
    updated     TEXT NOT NULL
) STRICT;

-- The roles each user holds, in the order the user was given them. A role
-- that users hold cannot be deleted (the foreign key has no action); removing
-- a user removes its rows.
CREATE TABLE user_roles (
    user     TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    role     TEXT NOT NULL REFERENCES roles (name),
    position INTEGER NOT NULL,
    PRIMARY KEY (user, role),
    UNIQUE (user, position)
) STRICT, WITHOUT ROWID;

-- Lets RoleHolders and the foreign key check on deleting a role find the
-- role's holders.
CREATE INDEX user_roles_role ON user_roles (role);

-- Source networks (canonical CIDR prefixes) and connection types, as JSON
-- arrays of strings; empty means no restriction.
ALTER TABLE users ADD COLUMN src TEXT NOT NULL DEFAULT '[]' CHECK (json_type(src) = 'array');
ALTER TABLE users ADD COLUMN conn_types TEXT NOT NULL DEFAULT '[]' CHECK (json_type(conn_types) = 'array');

-- Account limits; 0 means no limit.
ALTER TABLE accounts ADD COLUMN max_connections INTEGER NOT NULL DEFAULT 0 CHECK (max_connections >= 0);
ALTER TABLE accounts ADD COLUMN max_subs INTEGER NOT NULL DEFAULT 0 CHECK (max_subs >= 0);
ALTER TABLE accounts ADD COLUMN max_payload INTEGER NOT NULL DEFAULT 0 CHECK (max_payload >= 0);
