-- The previous password of each user whose password was replaced
-- ('user passwd', with or without --grace), for a while:
--   * until 'until' it still logs in ('user passwd --grace D'), with a JWT
--     that ends at 'until';
--   * after that, a login with it is a stale credential (a client not yet
--     updated), refused like a wrong password but never counted towards a
--     lockout; the row goes a day after 'until' (Maintain).
-- 'mark' is the change-feed row the replacement wrote: with a grace it is
-- quiet (it kicks nothing, so the previous password's connections stay),
-- and when the grace ends a row with before_id = mark kicks exactly the
-- connections granted before the replacement. 'ended' tells that this end
-- was written (one relay writes it: UPDATE … WHERE ended = 0).
CREATE TABLE password_graces (
    user          TEXT NOT NULL PRIMARY KEY REFERENCES users (name) ON DELETE CASCADE ON UPDATE CASCADE,
    previous_hash TEXT NOT NULL,
    since         INTEGER NOT NULL, -- Unix nanoseconds of the replacement
    until         INTEGER NOT NULL, -- Unix nanoseconds: the previous password works before it
    mark          INTEGER NOT NULL,
    ended         INTEGER NOT NULL DEFAULT 0 CHECK (ended IN (0, 1))
) STRICT;
CREATE INDEX password_graces_open ON password_graces (until) WHERE ended = 0;

-- A quiet row advances the feed and kicks nothing.
ALTER TABLE user_changes ADD COLUMN quiet INTEGER NOT NULL DEFAULT 0 CHECK (quiet IN (0, 1));
-- A grace end kicks only what was granted before the change before_id, or
-- (found through the servers) connected before before_time (Unix ns).
ALTER TABLE user_changes ADD COLUMN before_id INTEGER;
ALTER TABLE user_changes ADD COLUMN before_time INTEGER;
