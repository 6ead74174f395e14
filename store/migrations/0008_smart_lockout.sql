-- Smart lockout. Failures are counted per key, where a key is one of
--   'user+addr'  a username from one client address (user and addr set),
--   'addr'       a client address over any usernames (user = ''),
--   'user'       a username from every address together (addr = ''),
-- and a lockout of a username ('user') does not apply from the addresses
-- where that user logged in successfully within a recent period
-- (known_addrs). Addresses are keys as the store computes them: IPv4 as
-- is, IPv6 masked to a prefix ('2001:db8:1:2::/64').
--
-- The lockouts table of 0003 is rebuilt with the new kinds. Its address
-- rows are kept. Its username rows are not: they counted failures from
-- every address at a threshold now meant for one address, so carrying
-- their locks over would keep users locked out by exactly the attacks
-- this change is about. IPv6 addresses kept in full no longer match their
-- new prefix keys and are pruned as stale.
--
-- lock_failures is how many failures set the current lock and lock_window
-- (seconds) the window they fell in, so that 'user lockouts' can say why
-- a key is locked whatever policy the relay that locked it ran.
CREATE TABLE lockouts_v8 (
    kind          TEXT NOT NULL CHECK (kind IN ('user', 'addr', 'user+addr')),
    user          TEXT NOT NULL,
    addr          TEXT NOT NULL,
    failures      INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
    window_start  TEXT NOT NULL,
    locked_until  TEXT,
    locks         INTEGER NOT NULL DEFAULT 0 CHECK (locks >= 0),
    lock_failures INTEGER NOT NULL DEFAULT 0 CHECK (lock_failures >= 0),
    lock_window   INTEGER NOT NULL DEFAULT 0 CHECK (lock_window >= 0),
    updated       TEXT NOT NULL,
    PRIMARY KEY (kind, user, addr),
    CHECK ((kind = 'user' AND addr = '' AND user <> '')
        OR (kind = 'addr' AND user = '' AND addr <> '')
        OR (kind = 'user+addr' AND user <> '' AND addr <> ''))
) STRICT, WITHOUT ROWID;

INSERT INTO lockouts_v8 (kind, user, addr, failures, window_start, locked_until, locks, updated)
SELECT 'addr', '', key, failures, window_start, locked_until, locks, updated
FROM lockouts WHERE kind = 'addr' AND key <> '';

-- A lockout never enters the revocation feed: it refuses new logins and
-- closes no live connection, so that an attacker's wrong passwords cannot
-- disconnect the user. (Lockouts never had a generation trigger, 0005.)
DROP TRIGGER lockouts_insert_changes;
DROP TRIGGER lockouts_update_changes;
DROP TABLE lockouts;
ALTER TABLE lockouts_v8 RENAME TO lockouts;

-- Lets ActiveLockouts find the locked keys.
CREATE INDEX lockouts_locked_until ON lockouts (locked_until) WHERE locked_until IS NOT NULL;
-- Lets PruneLockouts find the quiet rows.
CREATE INDEX lockouts_updated ON lockouts (updated);
-- Lets Failed sweep the rows that were never locked and whose window has
-- passed: they mean no more than a missing row.
CREATE INDEX lockouts_never_locked ON lockouts (window_start) WHERE locks = 0;
-- Lets an unlock of an address find its pairs.
CREATE INDEX lockouts_addr ON lockouts (addr, kind);

-- The addresses (keys as above) where each user last logged in, and when:
-- exempt from a lockout of the username while last_success is recent. A
-- successful login writes its row, at most once an hour per address; the
-- store keeps the most recent few per user and prunes old ones. No
-- trigger: a login is no change to the user.
CREATE TABLE known_addrs (
    user         TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    addr         TEXT NOT NULL,
    last_success TEXT NOT NULL,
    PRIMARY KEY (user, addr)
) STRICT, WITHOUT ROWID;

-- Lets PruneLockouts drop old rows.
CREATE INDEX known_addrs_last_success ON known_addrs (last_success);
