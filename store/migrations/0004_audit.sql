-- The audit trail: one row per login decision the relay sent (kind 'login')
-- and one per admin change (kind 'admin'). Rows are only ever inserted and,
-- by retention, deleted; id is the order they were written in.
--
-- time is UTC Unix nanoseconds, an integer so that it sorts and compares
-- cheaply; latency_ns is nanoseconds. client_id holds the NATS client id's
-- 64 bits as a signed integer (ids never reach 2^63 in practice, and the
-- conversion round-trips regardless).
--
-- Login rows fill user … latency_ns and leave actor, action and detail
-- empty; result is 'allowed' or 'denied'. Admin rows fill actor (the OS user),
-- action (such as 'user add') and detail (what changed, never a password or a
-- hash), and user when the change names one; result is ''.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    time        INTEGER NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('login', 'admin')),
    user        TEXT NOT NULL DEFAULT '',
    account     TEXT NOT NULL DEFAULT '',
    client_host TEXT NOT NULL DEFAULT '',
    server_id   TEXT NOT NULL DEFAULT '',
    client_id   INTEGER NOT NULL DEFAULT 0,
    conn_type   TEXT NOT NULL DEFAULT '',
    result      TEXT NOT NULL DEFAULT '' CHECK (result IN ('', 'allowed', 'denied')),
    reason      TEXT NOT NULL DEFAULT '',
    latency_ns  INTEGER NOT NULL DEFAULT 0,
    actor       TEXT NOT NULL DEFAULT '',
    action      TEXT NOT NULL DEFAULT '',
    detail      TEXT NOT NULL DEFAULT '',
    CHECK ((kind = 'login') = (result <> ''))
) STRICT;

-- Lets retention (PruneAudit) and "since" queries find rows by time.
CREATE INDEX audit_time ON audit (time);
-- Lets "authrelay audit --user" read one user's rows in time order.
CREATE INDEX audit_user_time ON audit (user, time);
