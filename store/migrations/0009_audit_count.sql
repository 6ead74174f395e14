-- count is how many identical login decisions one audit row stands for.
-- Cheap denials (no credentials, a name that is not a valid username, a
-- password over the length limit) with the same reason, client address and
-- name within one aggregation interval are written as one row: the first
-- at once with count 1, the repeats at the interval's end as one row whose
-- time is the first repeat's. Past the writer's limit of distinct keys per
-- interval, further ones collapse into one row per reason with user and
-- client_host empty. Every other row has count 1.
ALTER TABLE audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1 CHECK (count >= 1);
