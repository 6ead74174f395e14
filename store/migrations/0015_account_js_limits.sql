-- The JetStream limits of an account with JetStream enabled (accounts.conf:
-- the account's jetstream block, max_mem, max_file, max_streams,
-- max_consumers). 0 is no limit of the account's own, as for the other
-- account limits.
ALTER TABLE accounts ADD COLUMN js_max_memory INTEGER NOT NULL DEFAULT 0 CHECK (js_max_memory >= 0);
ALTER TABLE accounts ADD COLUMN js_max_storage INTEGER NOT NULL DEFAULT 0 CHECK (js_max_storage >= 0);
ALTER TABLE accounts ADD COLUMN js_max_streams INTEGER NOT NULL DEFAULT 0 CHECK (js_max_streams >= 0);
ALTER TABLE accounts ADD COLUMN js_max_consumers INTEGER NOT NULL DEFAULT 0 CHECK (js_max_consumers >= 0);
